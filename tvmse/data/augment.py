"""Seeded on-the-fly augmentation of training mixtures: speed, room, channel colouring, noise mixing.

Why: models trained on a few recorded noise types learn those types, not speech enhancement (a model scored
+5 dB ΔSI-SDR on dev noise types and +1.7 dB on held-out types). Every mixture the mixer draws under an
:class:`Augment` gets, each with its own probability:

* speed perturbation of the speech (resampling by a factor in ``speed``: tempo and pitch together);
* a simulated room: an exponentially decaying noise-tail impulse response (:func:`synthetic_rir`, RT60 drawn
  from ``rt60_s``) applied to the speech and, separately, to the noise. The training target is the speech
  through the direct path and early reflections only (first ``EARLY_REFLECTIONS_S``), so the model learns to
  suppress late reverberation, as listeners prefer, rather than to restore a dry signal it cannot know;
* a second noise (recorded or generated) under the first at ``second_noise_db`` relative level;
* amplitude modulation of the noise (a slow random envelope: passing vehicles, machines switching);
* a random spectral tilt and EQ bump on the noise alone (new noise colours), and another on the whole
  mixture *and* the target (microphone and channel colouring, which a mask cannot and should not undo).

Level and SNR ranges are the mixer's (:class:`tvmse.data.mixing.MixConfig`). All randomness comes from the
generator passed in, in a fixed order, so a mixture is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import oaconvolve, resample_poly

from .framing import SAMPLE_RATE

EARLY_REFLECTIONS_S = 0.05  # the target keeps the direct path and reflections arriving within 50 ms
SPEED_DENOMINATOR = 20  # speed factors are k/20: resample_poly needs a rational ratio


@dataclass(frozen=True)
class Augment:
    """Probabilities and ranges of each augmentation (see the module docstring)."""

    speed_prob: float = 0.3
    speed: tuple[float, float] = (0.9, 1.1)
    reverb_prob: float = 0.3
    rt60_s: tuple[float, float] = (0.15, 0.8)
    second_noise_prob: float = 0.3
    second_noise_db: tuple[float, float] = (-10.0, 0.0)
    modulate_prob: float = 0.2
    noise_eq_prob: float = 0.5
    channel_eq_prob: float = 0.3
    tilt_db_per_octave: tuple[float, float] = (-4.0, 4.0)
    bump_db: tuple[float, float] = (-9.0, 9.0)

    def __post_init__(self) -> None:
        for name in ("speed_prob", "reverb_prob", "second_noise_prob", "modulate_prob", "noise_eq_prob",
                     "channel_eq_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Augment.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.5 <= self.speed[0] <= self.speed[1] <= 2.0:
            raise ValueError(f"Augment.speed must be an ordered range within [0.5, 2], got {self.speed}")
        if not 0.05 <= self.rt60_s[0] <= self.rt60_s[1]:
            raise ValueError(f"Augment.rt60_s must be an ordered range of at least 0.05 s, got {self.rt60_s}")


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` played ``factor`` times faster (resampled; pitch moves with tempo), float32."""
    up = SPEED_DENOMINATOR
    down = int(round(factor * SPEED_DENOMINATOR))
    if down == up:
        return x
    return resample_poly(x.astype(np.float64), up, down).astype(np.float32)


def synthetic_rir(rng: np.random.Generator, rt60_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(full, early) room impulse responses of one random room: a unit direct path after a short random delay,
    then Gaussian reflections whose envelope decays by 60 dB in ``rt60_s`` (Polack's statistical model), at a
    random direct-to-reverberant ratio. ``early`` is the same response cut after EARLY_REFLECTIONS_S."""
    length = int(min(rt60_s, 1.0) * SAMPLE_RATE)
    delay = int(rng.integers(0, 48))  # up to 3 ms before the direct sound
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60_s)
    tail[:delay + 16] = 0.0  # first reflection at least 1 ms after the direct sound
    drr_db = rng.uniform(-3.0, 12.0)
    tail *= 10.0 ** (-drr_db / 20.0) / np.sqrt(np.sum(tail ** 2) + 1e-12)
    full = tail.copy()
    full[delay] = 1.0
    early = full.copy()
    early[delay + int(EARLY_REFLECTIONS_S * SAMPLE_RATE):] = 0.0
    return full, early


def convolve_same(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Causal convolution cut to ``len(x)`` (float64)."""
    return oaconvolve(x.astype(np.float64), rir)[:len(x)]


def random_eq(rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """Gain curve (linear, on the rfft bins of any length via :func:`apply_eq`) as dB knots: a tilt around
    1 kHz plus one Gaussian bump in log-frequency."""
    tilt = rng.uniform(*aug.tilt_db_per_octave)
    centre = rng.uniform(np.log2(100.0), np.log2(7000.0))
    width = rng.uniform(0.3, 1.5)  # octaves
    gain = rng.uniform(*aug.bump_db)
    return np.array([tilt, centre, width, gain])


def apply_eq(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Filter ``x`` by the gain curve of :func:`random_eq` in the frequency domain (float64, same length)."""
    tilt, centre, width, gain = knots
    spectrum = np.fft.rfft(x.astype(np.float64))
    freqs = np.maximum(np.fft.rfftfreq(len(x), 1.0 / SAMPLE_RATE), 20.0)
    octaves = np.log2(freqs)
    db = tilt * (octaves - np.log2(1000.0)) + gain * np.exp(-0.5 * ((octaves - centre) / width) ** 2)
    db = np.clip(db, -30.0, 30.0)
    return np.fft.irfft(spectrum * 10.0 ** (db / 20.0), n=len(x))


def modulate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise under a slow random envelope: a sinusoid of 0.2-4 Hz with a random depth, never below 10 %."""
    rate = rng.uniform(0.2, 4.0)
    depth = rng.uniform(0.3, 0.9)
    phase = rng.uniform(0, 2 * np.pi)
    t = np.arange(len(x)) / SAMPLE_RATE
    envelope = 1.0 - depth * 0.5 * (1.0 + np.sin(2 * np.pi * rate * t + phase))
    return x * np.maximum(envelope, 0.1)
