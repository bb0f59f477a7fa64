"""On-the-fly noisy mixtures at a requested SNR and level, reproducible from a seed.

One mixture: a random utterance of the split, a random noise segment (a recording of the same split looped if
shorter than the speech, or with probability ``generated_noise_prob`` a generated white/pink/brown noise or
babble made of 3-5 other utterances of the same split, so dev speakers never leak into training), an SNR drawn
uniformly from ``snr_db`` and a mixture level drawn uniformly from ``level_dbfs`` (RMS re full scale 1.0).

SNR is ``10*log10(sum(clean**2) / sum(noise**2))`` over the returned segment. The level is applied as one gain
to clean and noise together, so it never changes the SNR. No clipping: speech has a high crest factor, so the
level is drawn uniformly from ``level_dbfs`` cut at the mixture's own ceiling (the level at which its peak
reaches ``peak_limit``); ``Mixture.level_dbfs`` records the level applied. ``noisy == clean + noise`` exactly
in float32.

With ``MixConfig.augment`` set (an :class:`tvmse.data.augment.Augment`, as :data:`TRAINING_MIX` has), each
mixture is also augmented (speed, simulated room, second noise, modulation, EQ; see that module). A reverberant
mixture's ``clean`` is the training target (direct path and early reflections), and its ``noise`` everything
else in ``noisy`` (noise and late reverberation), so ``noisy == clean + noise`` holds for it too.

Every draw takes its randomness from one ``numpy.random.Generator`` in a fixed order, so a seed fixes the
mixture. :class:`MixtureSet` seeds item ``i`` with ``(seed, i)``, so item ``i`` is the same whatever ``n`` is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .augment import Augment, apply_eq, convolve_same, modulate, random_eq, speed_perturb, synthetic_rir
from .corpus import Corpus
from .framing import SAMPLE_RATE, features, stft
from .noise import GENERATED_NOISES, check_kinds, generate_noise, loop_segment, unit_rms

log = logging.getLogger(__name__)

# A crop of a longer utterance is redrawn if its energy is below this fraction of the utterance's mean
# power: an all-silence crop has no defined SNR and teaches nothing.
MIN_CROP_POWER_RATIO = 0.05
MAX_CROP_TRIES = 10
MIXTURE_SET_STREAM = 0  # first SeedSequence word after the seed: separates validation sets from training batches


@dataclass(frozen=True)
class MixConfig:
    """Ranges the mixer draws from (defaults: the ranges tvmse trains and validates on)."""

    snr_db: tuple[float, float] = (-5.0, 15.0)
    level_dbfs: tuple[float, float] = (-25.0, -5.0)
    generated_noise_prob: float = 0.0
    generated_noises: tuple[str, ...] = GENERATED_NOISES
    peak_limit: float = 0.99
    augment: Augment | None = None

    def __post_init__(self) -> None:
        check_kinds(self.generated_noises)
        for name in ("snr_db", "level_dbfs"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"MixConfig.{name}: low {low} is above high {high}")
        if not 0.0 <= self.generated_noise_prob <= 1.0:
            raise ValueError(f"MixConfig.generated_noise_prob must be in [0, 1], got {self.generated_noise_prob}")
        if not 0.0 < self.peak_limit <= 1.0:
            raise ValueError(f"MixConfig.peak_limit must be in (0, 1], got {self.peak_limit}")


@dataclass(frozen=True, eq=False)
class Mixture:
    """One mixture; unpacks as ``noisy, clean, noise, snr_db = mixture``."""

    noisy: np.ndarray
    clean: np.ndarray
    noise: np.ndarray
    snr_db: float
    level_dbfs: float
    speech_file: str
    noise_source: str

    def __iter__(self) -> Iterator:
        return iter((self.noisy, self.clean, self.noise, self.snr_db))


def energy(x: np.ndarray) -> float:
    """Sum of squares in float64 (the SNR definition's energy)."""
    return float(np.sum(np.square(x, dtype=np.float64)))


def scale_to_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``noise`` scaled (float64) so that ``10*log10(energy(clean) / energy(noise)) == snr_db``."""
    if clean.shape != noise.shape:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} segments must have the same length")
    e_clean, e_noise = energy(clean), energy(noise)
    if e_clean == 0.0 or e_noise == 0.0:
        raise ValueError("cannot set an SNR with a silent clean or noise segment")
    return noise.astype(np.float64) * np.sqrt(e_clean / (e_noise * 10.0 ** (snr_db / 10.0)))


def level_ceiling_dbfs(mixture: np.ndarray, peak_limit: float) -> float:
    """Highest RMS level (dBFS) ``mixture`` can be scaled to without a sample exceeding ``peak_limit``."""
    rms = np.sqrt(np.mean(np.square(mixture, dtype=np.float64)))
    return float(20.0 * np.log10(peak_limit * rms / np.max(np.abs(mixture))))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, level_dbfs: float,
               peak_limit: float = 0.99) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Scale ``noise`` to ``snr_db`` against ``clean``, then both to ``level_dbfs`` (lowered if it would clip).

    Returns float32 ``noisy, clean, noise`` with ``noisy == clean + noise`` and the level actually applied.
    """
    noise = scale_to_snr(clean, noise, snr_db)
    clean = clean.astype(np.float64)
    gain, level = level_gain(clean + noise, level_dbfs, peak_limit)
    clean32, noise32 = (clean * gain).astype(np.float32), (noise * gain).astype(np.float32)
    return clean32 + noise32, clean32, noise32, level


def level_gain(mixture: np.ndarray, level_dbfs: float, peak_limit: float) -> tuple[float, float]:
    """(gain, level): the gain that brings ``mixture`` to ``level_dbfs``, lowered to its clipping ceiling."""
    level = min(level_dbfs, level_ceiling_dbfs(mixture, peak_limit))
    return 10.0 ** (level / 20.0) / np.sqrt(np.mean(np.square(mixture, dtype=np.float64))), level


def fit_speech(utterance: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Crop (random start, avoiding near-silent crops) or zero-pad (random offset) to ``length`` samples."""
    if len(utterance) <= length:
        out = np.zeros(length, dtype=np.float32)
        start = int(rng.integers(0, length - len(utterance) + 1))
        out[start:start + len(utterance)] = utterance
        return out
    floor = MIN_CROP_POWER_RATIO * energy(utterance) / len(utterance) * length
    crop = utterance[:length]
    for _ in range(MAX_CROP_TRIES):
        start = int(rng.integers(0, len(utterance) - length + 1))
        crop = utterance[start:start + length]
        if energy(crop) >= floor:
            break
    return crop


class Mixer:
    """Draws mixtures from one split of a corpus; all randomness comes from the generator passed to :meth:`draw`."""

    def __init__(self, corpus: Corpus, split: str, config: MixConfig = MixConfig()) -> None:
        self.corpus, self.split, self.config = corpus, split, config
        self.speech_files = corpus.speech_files(split)
        needs_recordings = config.generated_noise_prob < 1.0
        self.noise_files = corpus.noise_files(split) if needs_recordings else []
        if config.generated_noise_prob > 0 and "babble" in config.generated_noises and len(self.speech_files) < 2:
            raise ValueError(f"babble needs at least 2 utterances in split {split!r}; drop 'babble' from "
                             f"MixConfig.generated_noises")

    def draw(self, rng: np.random.Generator, length: int | None = None) -> Mixture:
        """One mixture; ``length`` in samples, or None for the utterance's own length."""
        index = int(rng.integers(len(self.speech_files)))
        utterance = self.corpus.load_speech(self.speech_files[index])
        aug = self.config.augment
        if aug is not None and rng.random() < aug.speed_prob:
            utterance = speed_perturb(utterance, rng.uniform(*aug.speed))
        clean = utterance if length is None else fit_speech(utterance, length, rng)
        noise, source = self._noise(len(clean), rng, exclude=index)
        if aug is not None:
            return self._augmented(index, clean, noise, source, rng, aug)
        snr = float(rng.uniform(*self.config.snr_db))
        level = self._draw_level(clean + scale_to_snr(clean, noise, snr), rng)
        noisy, clean, noise, level = mix_at_snr(clean, noise, snr, level, self.config.peak_limit)
        return Mixture(noisy, clean, noise, snr, level, self.speech_files[index].name, source)

    def _augmented(self, index: int, clean: np.ndarray, noise: np.ndarray, source: str,
                   rng: np.random.Generator, aug: Augment) -> Mixture:
        """The rest of :meth:`draw` under ``aug``: noise mixing and colouring, room, channel, SNR and level."""
        noise = unit_rms(noise).astype(np.float64)
        if rng.random() < aug.second_noise_prob:
            other, other_source = self._noise(len(clean), rng, exclude=index)
            noise = noise + unit_rms(other) * 10.0 ** (rng.uniform(*aug.second_noise_db) / 20.0)
            source = f"{source}+{other_source}"
        if rng.random() < aug.modulate_prob:
            noise = modulate(noise, rng)
        if rng.random() < aug.noise_eq_prob:
            noise = apply_eq(noise, random_eq(rng, aug))
        speech = target = clean.astype(np.float64)
        if rng.random() < aug.reverb_prob:
            rt60 = rng.uniform(*aug.rt60_s)
            full, early = synthetic_rir(rng, rt60)
            speech, target = convolve_same(clean, full), convolve_same(clean, early)
            noise = convolve_same(noise, synthetic_rir(rng, rt60)[0])  # same room, another position
        if rng.random() < aug.channel_eq_prob:
            knots = random_eq(rng, aug)
            speech, target, noise = (apply_eq(x, knots) for x in (speech, target, noise))
        snr = float(rng.uniform(*self.config.snr_db))
        if energy(noise) == 0.0:  # a silent noise excerpt: nothing to scale, keep the speech alone
            noise = np.zeros_like(speech)
        else:
            noise = scale_to_snr(speech, noise, snr)
        gain, level = level_gain(speech + noise, self._draw_level(speech + noise, rng), self.config.peak_limit)
        clean32 = (target * gain).astype(np.float32)
        rest32 = ((speech - target + noise) * gain).astype(np.float32)
        return Mixture(clean32 + rest32, clean32, rest32, snr, level, self.speech_files[index].name, source)

    def _draw_level(self, mixture: np.ndarray, rng: np.random.Generator) -> float:
        """Uniform level over the configured range cut at this mixture's clipping ceiling (not piled up at it)."""
        low, high = self.config.level_dbfs
        high = min(high, level_ceiling_dbfs(mixture, self.config.peak_limit))
        return float(rng.uniform(min(low, high), high))

    def _noise(self, length: int, rng: np.random.Generator, exclude: int) -> tuple[np.ndarray, str]:
        if rng.random() < self.config.generated_noise_prob:
            kind = str(rng.choice(self.config.generated_noises))
            return generate_noise(kind, length, rng, lambda r: self._other_utterance(r, exclude)), kind
        path = self.noise_files[int(rng.integers(len(self.noise_files)))]
        return loop_segment(self.corpus.load_noise(path), length, rng), path.name

    def _other_utterance(self, rng: np.random.Generator, exclude: int) -> np.ndarray:
        """A babble talker: any utterance of the split except the target one."""
        index = int(rng.integers(len(self.speech_files) - 1))
        return self.corpus.load_speech(self.speech_files[index + (index >= exclude)])


# What tvmse trains on: SNRs and levels wider than the validation sets' (−5…15 dB, −25…−5 dBFS), a quarter of
# the noises generated (white/pink/brown, babble of other training speakers) and every augmentation on.
TRAINING_MIX = MixConfig(snr_db=(-10.0, 20.0), level_dbfs=(-35.0, -5.0), generated_noise_prob=0.25,
                         augment=Augment())


class MixtureSet(Sequence[Mixture]):
    """A fixed validation set: ``n`` mixtures of ``split``, identical across runs for one seed and numpy version.

    ``seconds=None`` keeps each utterance's full length; a number crops/pads every item to that length.
    """

    def __init__(self, corpus: Corpus, split: str = "dev", n: int = 100, seed: int = 0,
                 seconds: float | None = None, config: MixConfig = MixConfig()) -> None:
        if n < 1:
            raise ValueError(f"MixtureSet needs n >= 1 mixtures, got {n}")
        length = None if seconds is None else int(round(seconds * SAMPLE_RATE))
        mixer = Mixer(corpus, split, config)
        self.split, self.seed = split, seed
        self._items = [mixer.draw(np.random.default_rng([seed, MIXTURE_SET_STREAM, i]), length) for i in range(n)]
        log.debug("built %d mixtures of split %r with seed %d", n, split, seed)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):  # type: ignore[override]
        return self._items[index]


def log_power_percentiles(mixtures: Sequence[Mixture], percentiles: Sequence[float]) -> dict[str, np.ndarray]:
    """Percentiles of the mixture's bin power in dB (all bins) and of clean power where speech dominates.

    The recipe behind the fixed feature map constants in :mod:`tvmse.data.framing`.
    """
    all_db, speech_db = [], []
    for m in mixtures:
        noisy, clean, noise = (np.abs(stft(x)) ** 2 for x in (m.noisy, m.clean, m.noise))
        active = noisy.sum(axis=1) > 0  # drop all-zero frames (padding)
        all_db.append(10 * np.log10(noisy[active] + 1e-12).ravel())
        dominant = clean > noise
        speech_db.append(10 * np.log10(clean[dominant] + 1e-12))
    return {"mixture_db": np.percentile(np.concatenate(all_db), percentiles),
            "speech_dominant_db": np.percentile(np.concatenate(speech_db), percentiles),
            "features": np.percentile(np.concatenate([features(stft(m.noisy)).ravel() for m in mixtures]),
                                      percentiles)}
