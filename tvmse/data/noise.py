"""Generated noises that widen the training distribution beyond the recorded noise types.

White, pink (1/f power) and brown (1/f^2 power) noise are Gaussian noise shaped in the frequency domain, so any
length comes out with the same spectral slope; babble is a sum of 3-5 other utterances at equal level. Each is
returned at unit RMS: the mixer sets the level from the requested SNR.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

COLORED_NOISES = ("white", "pink", "brown")
GENERATED_NOISES = COLORED_NOISES + ("babble",)
_SLOPE = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # exponent of 1/f in the power spectrum
BABBLE_TALKERS = (3, 5)


def unit_rms(x: np.ndarray) -> np.ndarray:
    """Scale to RMS 1 (float32); a silent input is returned unchanged since it has no level to set."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return (x / rms).astype(np.float32) if rms > 0 else x.astype(np.float32)


def colored_noise(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown Gaussian noise of ``length`` samples at unit RMS."""
    if kind not in _SLOPE:
        raise ValueError(f"unknown colored noise {kind!r}; choose one of {COLORED_NOISES}")
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0  # keep DC finite; it is removed below
    spectrum /= freqs ** (_SLOPE[kind] / 2.0)
    spectrum[0] = 0.0
    return unit_rms(np.fft.irfft(spectrum, n=length))


UtterancePicker = Callable[[np.random.Generator], np.ndarray]


def babble(length: int, rng: np.random.Generator, pick_utterance: UtterancePicker) -> np.ndarray:
    """Sum of 3-5 utterances (each looped to ``length`` from a random start, at equal RMS), at unit RMS."""
    talkers = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
    total = np.zeros(length, dtype=np.float64)
    for _ in range(talkers):
        total += unit_rms(loop_segment(pick_utterance(rng), length, rng))
    return unit_rms(total)


def loop_segment(source: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A ``length``-sample excerpt from a random start, wrapping around (looping) when ``source`` is shorter."""
    if len(source) == 0:
        raise ValueError("cannot take a segment of an empty recording")
    start = int(rng.integers(0, len(source)))
    if start + length <= len(source):
        return source[start:start + length]
    reps = -(-(start + length) // len(source))
    return np.tile(source, reps)[start:start + length]


def generate_noise(kind: str, length: int, rng: np.random.Generator,
                   pick_utterance: UtterancePicker | None = None) -> np.ndarray:
    """Dispatch on ``kind`` in GENERATED_NOISES; babble needs ``pick_utterance(rng) -> utterance``."""
    if kind == "babble":
        if pick_utterance is None:
            raise ValueError("babble noise needs pick_utterance to draw the talkers' utterances")
        return babble(length, rng, pick_utterance)
    return colored_noise(kind, length, rng)


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """Validate a list of generated-noise names early, naming the valid ones."""
    bad = [k for k in kinds if k not in GENERATED_NOISES]
    if bad:
        raise ValueError(f"unknown generated noise(s) {bad}; valid: {GENERATED_NOISES}")
    return tuple(kinds)
