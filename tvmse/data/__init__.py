"""Data for tvmse: STFT framing shared with the streaming model, features, corpus, mixing, training batches.

Modules: :mod:`.framing` (STFT/ISTFT, streaming pair, features, mask), :mod:`.corpus` (file lists, loading),
:mod:`.noise` (generated noises), :mod:`.mixing` (mixtures, validation sets), :mod:`.batches` (torch batches).
"""

from .batches import Batch, TrainingBatches
from .corpus import (HELD_OUT_NOISE_TYPES, UNSEEN_SPLIT, Corpus, CorpusError, CorpusNotFoundError,
                     bundled_sample_corpus, default_corpus_manifest, load_audio, noise_type)
from .framing import (FEATURE_DB_HIGH, FEATURE_DB_LOW, HOP, N_BINS, N_FFT, SAMPLE_RATE, STREAM_DELAY,
                      StreamingISTFT, StreamingSTFT, analysis_window, apply_mask, features, istft, n_frames, stft)
from .mixing import MixConfig, Mixer, Mixture, MixtureSet, log_power_percentiles, mix_at_snr
from .noise import GENERATED_NOISES, colored_noise

__all__ = [
    "default_corpus_manifest",
    # framing and features
    "SAMPLE_RATE", "N_FFT", "HOP", "N_BINS", "STREAM_DELAY", "FEATURE_DB_LOW", "FEATURE_DB_HIGH",
    "analysis_window", "n_frames", "stft", "istft", "StreamingSTFT", "StreamingISTFT", "features", "apply_mask",
    # corpus
    "Corpus", "CorpusError", "CorpusNotFoundError", "bundled_sample_corpus", "load_audio", "noise_type",
    "HELD_OUT_NOISE_TYPES", "UNSEEN_SPLIT",
    # mixing and generated noise
    "MixConfig", "Mixer", "Mixture", "MixtureSet", "mix_at_snr", "log_power_percentiles", "GENERATED_NOISES",
    "colored_noise",
    # training batches
    "Batch", "TrainingBatches",
]
