"""Speech-enhancement networks in their streaming (one frame per call) form."""

from tvmse.models.tinylstm import TinyLSTM, TinyLSTMConfig

__all__ = ["TinyLSTM", "TinyLSTMConfig"]
