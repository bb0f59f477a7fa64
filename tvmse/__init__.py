"""tvmse: sparse int8 speech-enhancement networks compiled for Arm Ethos-U microNPUs."""

__version__ = "0.1.0"
