"""Tests for tvmse.data: framing shared with the streaming model, features, corpus, mixing, batches."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tvmse.data import (  # noqa: E402
    FEATURE_DB_HIGH, FEATURE_DB_LOW, HELD_OUT_NOISE_TYPES, HOP, N_BINS, N_FFT, SAMPLE_RATE, STREAM_DELAY, UNSEEN_SPLIT,
    Corpus, MixConfig, Mixer, noise_type,
    MixtureSet, StreamingISTFT, StreamingSTFT, TrainingBatches, analysis_window, apply_mask, bundled_sample_corpus,
    colored_noise, default_corpus_manifest, features, istft, mix_at_snr, n_frames, stft,
)
from tvmse.data.augment import Augment, synthetic_rir  # noqa: E402
from tvmse.data.mixing import TRAINING_MIX, energy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPUS = default_corpus_manifest().parent


def snr_of(clean, noise):
    return 10 * np.log10(energy(clean) / energy(noise))


def stream_analysis(x):
    """Push x (zero-padded to whole hops, one extra hop of flush) through StreamingSTFT."""
    blocks = n_frames(len(x))
    padded = np.zeros(blocks * HOP, dtype=np.float32)
    padded[:len(x)] = x
    analysis = StreamingSTFT()
    return np.stack([analysis.push(padded[k * HOP:(k + 1) * HOP]) for k in range(blocks)])


def stream_synthesis(spectra):
    synthesis = StreamingISTFT()
    return np.concatenate([synthesis.push(frame) for frame in spectra])


@pytest.fixture(scope="module")
def sample():
    return bundled_sample_corpus()


# --- framing --------------------------------------------------------------------------------------------------

def test_window_is_periodic_sqrt_hann_and_overlap_adds_to_one():
    w = analysis_window()
    assert w.shape == (N_FFT,) and w[0] == 0.0 and w[N_FFT // 2] == pytest.approx(1.0)
    np.testing.assert_allclose(w[:HOP] ** 2 + w[HOP:] ** 2, 1.0, atol=1e-12)


@pytest.mark.parametrize("length", [0, 1, 255, 256, 257, 4000, 16000])
def test_stft_shape_and_perfect_reconstruction(length):
    x = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    spectra = stft(x)
    assert spectra.shape == (n_frames(length), N_BINS) and spectra.dtype == np.complex64
    np.testing.assert_allclose(istft(spectra, length), x, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(length=st.integers(min_value=1, max_value=3000), seed=st.integers(0, 2**32 - 1))
def test_streaming_stft_equals_whole_signal_stft(length, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, length).astype(np.float32)
    assert np.array_equal(stream_analysis(x), stft(x))


@settings(max_examples=25, deadline=None)
@given(frames=st.integers(min_value=2, max_value=12), seed=st.integers(0, 2**32 - 1))
def test_streaming_istft_equals_whole_signal_istft_after_one_hop(frames, seed):
    rng = np.random.default_rng(seed)
    spectra = (rng.standard_normal((frames, N_BINS)) + 1j * rng.standard_normal((frames, N_BINS))).astype(np.complex64)
    length = (frames - 1) * HOP
    streamed = stream_synthesis(spectra)
    assert streamed.shape == (frames * HOP,)
    assert np.array_equal(streamed[STREAM_DELAY:STREAM_DELAY + length], istft(spectra, length))


def test_streaming_round_trip_is_the_input_delayed_by_one_hop():
    x = np.random.default_rng(1).standard_normal(10 * HOP).astype(np.float32)
    out = stream_synthesis(stream_analysis(x))
    np.testing.assert_allclose(out[:STREAM_DELAY], 0.0, atol=1e-7)  # start-up: zero history
    np.testing.assert_allclose(out[STREAM_DELAY:STREAM_DELAY + len(x)], x, atol=1e-5)


def test_streaming_start_up_is_zero_history_and_reset_restores_it():
    x = np.random.default_rng(2).standard_normal(HOP)
    analysis = StreamingSTFT()
    first = analysis.push(x)
    analysis.push(x)
    analysis.reset()
    assert np.array_equal(analysis.push(x), first)
    expected = np.fft.rfft(np.concatenate([np.zeros(HOP), x]) * analysis_window()).astype(np.complex64)
    assert np.array_equal(first, expected)


def test_streaming_rejects_wrong_block_sizes():
    with pytest.raises(ValueError, match="exactly 256 samples"):
        StreamingSTFT().push(np.zeros(255))
    with pytest.raises(ValueError, match="257"):
        StreamingISTFT().push(np.zeros(256, dtype=np.complex64))


def test_istft_refuses_more_samples_than_frames_cover():
    with pytest.raises(ValueError, match="at most"):
        istft(stft(np.zeros(1000)), 5000)


# --- features and mask ------------------------------------------------------------------------------------------

def test_features_affine_map_endpoints_and_clipping():
    def bin_at(db):
        return np.full(N_BINS, np.sqrt(10 ** (db / 10)), dtype=np.complex64)
    assert features(bin_at(FEATURE_DB_LOW)) == pytest.approx(-1.0, abs=1e-5)
    assert features(bin_at(FEATURE_DB_HIGH)) == pytest.approx(1.0, abs=1e-5)
    assert features(bin_at((FEATURE_DB_LOW + FEATURE_DB_HIGH) / 2)) == pytest.approx(0.0, abs=1e-5)
    assert np.all(features(np.zeros(N_BINS, dtype=np.complex64)) == -1.0)
    assert np.all(features(bin_at(200.0)) == 1.0)


def test_features_stay_in_range_and_use_it_on_mixtures(sample):
    spectra = np.concatenate([stft(m.noisy) for m in MixtureSet(sample, "dev", n=6, seed=3)])
    f = features(spectra)
    assert f.dtype == np.float32 and f.shape == spectra.shape
    assert f.min() >= -1.0 and f.max() <= 1.0
    low, high = np.percentile(f, [1, 99])
    assert low < -0.3 and high > 0.3  # speech+noise spreads over the int8 range, not squeezed into a corner


def test_apply_mask():
    spectra = stft(np.random.default_rng(0).standard_normal(2000))
    assert np.array_equal(apply_mask(spectra, np.ones(spectra.shape, np.float32)), spectra)
    assert not np.any(apply_mask(spectra, np.zeros(spectra.shape)))
    with pytest.raises(ValueError, match="does not match"):
        apply_mask(spectra, np.ones((1, N_BINS)))
    with pytest.raises(ValueError, match="real-valued"):
        apply_mask(spectra, spectra)


# --- mixing ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.3, 15.0])
def test_mix_at_snr_hits_the_snr_and_does_not_clip(snr):
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(16000).astype(np.float32) * np.hanning(16000).astype(np.float32)
    noise = rng.standard_normal(16000).astype(np.float32) * 0.01
    noisy, c, n, level = mix_at_snr(clean, noise, snr, level_dbfs=-5.0)
    assert snr_of(c, n) == pytest.approx(snr, abs=0.01)
    assert np.array_equal(noisy, c + n)
    assert np.abs(noisy).max() <= 0.99 + 1e-6
    assert level <= -5.0


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_mixer_snr_and_level_ranges(sample, prob):
    config = MixConfig(generated_noise_prob=prob)
    mixer = Mixer(sample, "dev", config)
    rng = np.random.default_rng(4)
    for _ in range(8):
        m = mixer.draw(rng, length=SAMPLE_RATE)
        assert len(m.noisy) == SAMPLE_RATE
        assert -5.0 <= m.snr_db <= 15.0
        assert snr_of(m.clean, m.noise) == pytest.approx(m.snr_db, abs=0.01)
        assert m.level_dbfs <= -5.0 and np.abs(m.noisy).max() <= 0.99 + 1e-6
        measured = 10 * np.log10(np.mean(np.square(m.noisy, dtype=np.float64)))
        assert measured == pytest.approx(m.level_dbfs, abs=0.01)
        assert (m.noise_source in config.generated_noises) == (prob == 1.0)


def test_noise_shorter_than_speech_is_looped(sample):
    mixer = Mixer(sample, "dev")
    m = mixer.draw(np.random.default_rng(0), length=8 * SAMPLE_RATE)  # sample noises are 3 s long
    n = m.noise / np.sqrt(np.mean(m.noise.astype(np.float64) ** 2))
    assert np.allclose(n[:SAMPLE_RATE], n[3 * SAMPLE_RATE:4 * SAMPLE_RATE], atol=1e-4)


def test_mixture_set_is_identical_across_constructions(sample):
    a = MixtureSet(sample, "dev", n=5, seed=11)
    b = MixtureSet(sample, "dev", n=5, seed=11)
    longer = MixtureSet(sample, "dev", n=7, seed=11)
    other = MixtureSet(sample, "dev", n=5, seed=12)
    for x, y, z in zip(a, b, longer):
        for field in ("noisy", "clean", "noise"):
            assert np.array_equal(getattr(x, field), getattr(y, field))
            assert np.array_equal(getattr(x, field), getattr(z, field))  # item i does not depend on n
        assert (x.snr_db, x.speech_file, x.noise_source) == (y.snr_db, y.speech_file, y.noise_source)
    assert any(x.snr_db != y.snr_db for x, y in zip(a, other))
    noisy, clean, noise, snr = a[0]
    assert np.array_equal(noisy, clean + noise) and snr == a[0].snr_db


def test_mixture_set_fixed_length(sample):
    for m in MixtureSet(sample, "dev", n=3, seed=0, seconds=1.5):
        assert len(m.noisy) == len(m.clean) == len(m.noise) == 24000


@pytest.mark.parametrize("kind,slope_db_per_octave", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_colored_noise_slope(kind, slope_db_per_octave):
    x = colored_noise(kind, 2 ** 16, np.random.default_rng(0))
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-5)
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    octave = lambda f: power[f:2 * f].mean()  # noqa: E731
    measured = 10 * np.log10(octave(4096) / octave(1024)) / 2
    assert measured == pytest.approx(slope_db_per_octave, abs=0.5)


def test_babble_and_unknown_noise_kind(sample):
    config = MixConfig(generated_noise_prob=1.0, generated_noises=("babble",))
    m = Mixer(sample, "dev", config).draw(np.random.default_rng(0), length=SAMPLE_RATE)
    assert m.noise_source == "babble" and snr_of(m.clean, m.noise) == pytest.approx(m.snr_db, abs=0.01)
    with pytest.raises(ValueError, match="unknown generated noise"):
        MixConfig(generated_noises=("purple",))


# --- training batches -------------------------------------------------------------------------------------------

def test_training_batches_shapes_and_determinism(sample):
    import torch

    batches = TrainingBatches(sample, "dev", batch_size=3, seconds=1.0, seed=5, n_batches=2)
    first = list(batches)
    again = TrainingBatches(sample, "dev", batch_size=3, seconds=1.0, seed=5).batch(1)
    assert len(first) == len(batches) == 2
    frames = n_frames(SAMPLE_RATE)
    b = first[1]
    assert b.features.shape == b.clean_magnitude.shape == b.noisy_spectrum.shape == (3, frames, N_BINS)
    assert (b.features.dtype, b.clean_magnitude.dtype, b.noisy_spectrum.dtype) == \
        (torch.float32, torch.float32, torch.complex64)
    assert float(b.features.min()) >= -1.0 and float(b.features.max()) <= 1.0
    torch.testing.assert_close(features_of(b.noisy_spectrum), b.features, rtol=0, atol=1e-5)
    noisy, _ = batches.waveforms(1)
    torch.testing.assert_close(b.noisy_spectrum, torch.from_numpy(np.stack([stft(x) for x in noisy])),
                               rtol=0, atol=2e-5)
    for x, y in zip(b, again):
        assert torch.equal(x, y)
    assert not torch.equal(first[0].features, first[1].features)


def test_augmented_mixtures_are_seeded_and_consistent(sample):
    """Every augmentation on at once: still noisy == clean + noise, same seed → same mixture, audio not silent."""
    aug = Augment(speed_prob=1.0, reverb_prob=1.0, second_noise_prob=1.0, modulate_prob=1.0, noise_eq_prob=1.0,
                  channel_eq_prob=1.0)
    mixer = Mixer(sample, "dev", MixConfig(snr_db=(-10, 20), generated_noise_prob=0.5, augment=aug))
    plain = Mixer(sample, "dev")
    for i in range(6):
        m = mixer.draw(np.random.default_rng([3, i]), 8000)
        again = mixer.draw(np.random.default_rng([3, i]), 8000)
        assert np.array_equal(m.noisy, again.noisy) and np.array_equal(m.clean, again.clean)
        assert m.noisy.shape == (8000,) and np.array_equal(m.noisy, m.clean + m.noise)
        assert energy(m.clean) > 0 and energy(m.noise) > 0 and np.max(np.abs(m.noisy)) <= 0.99 + 1e-6
        assert "+" in m.noise_source  # a second noise was mixed in
        base = plain.draw(np.random.default_rng([3, i]), 8000)
        assert not np.array_equal(base.clean, m.clean)


def test_synthetic_room_decays_and_keeps_the_direct_path():
    full, early = synthetic_rir(np.random.default_rng(0), rt60_s=0.5)
    direct = int(np.argmax(full))
    assert full[direct] == 1.0 and early[direct] == 1.0
    assert not np.any(early[direct + int(0.05 * SAMPLE_RATE):])
    tail = full[direct + 1:]
    first, last = (energy(tail[k * 1600:(k + 1) * 1600]) for k in (0, 3))  # 0-0.1 s vs 0.3-0.4 s
    assert last < first * 10 ** (-2.5)  # ~ -60 dB per 0.5 s: about -36 dB between these windows


def test_training_never_draws_held_out_types_even_as_second_noise():
    corpus = Corpus.from_manifest(SHARED_CORPUS / "manifest.json")
    mixer = Mixer(corpus, "train", TRAINING_MIX)
    sources = " ".join(mixer.draw(np.random.default_rng([1, i]), 4000).noise_source for i in range(40))
    assert not any(t in sources for t in HELD_OUT_NOISE_TYPES)


def features_of(spectrum):
    import torch
    return torch.from_numpy(features(spectrum.numpy()))


# --- corpus -----------------------------------------------------------------------------------------------------

def test_bundled_sample_corpus_is_small_and_attributed(sample):
    speech, noise = sample.speech_files("dev"), sample.noise_files("dev")
    assert len(speech) == 3 and len(noise) == 3
    files = speech + noise
    assert sum(p.stat().st_size for p in files) <= 300_000
    notice = (REPO / "examples" / "audio" / "NOTICE.md").read_text()
    for p in files:
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, p.suffix) == (SAMPLE_RATE, 1, ".flac") and info.duration <= 4.0
        assert f"{p.parent.parent.name}/{p.parent.name}/{p.name}" in notice
    with pytest.raises(ValueError, match="is empty"):
        sample.speech_files("train")


def write_tone(path, rate=SAMPLE_RATE, seconds=0.5, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    x = 0.1 * np.sin(2 * np.pi * 440 * t)
    sf.write(str(path), np.stack([x] * channels, axis=1) if channels > 1 else x, rate)


def test_from_folder_flat_and_split_layouts(tmp_path):
    (tmp_path / "speech").mkdir()
    (tmp_path / "noise" / "train").mkdir(parents=True)
    (tmp_path / "noise" / "dev").mkdir()
    write_tone(tmp_path / "speech" / "b.wav")
    write_tone(tmp_path / "speech" / "a.flac")
    write_tone(tmp_path / "noise" / "train" / "n.wav")
    write_tone(tmp_path / "noise" / "dev" / "m.wav")
    corpus = Corpus.from_folder(tmp_path / "speech", tmp_path / "noise")
    assert [p.name for p in corpus.speech_files("all")] == ["a.flac", "b.wav"]
    assert [p.name for p in corpus.noise_files("dev")] == ["m.wav"]
    with pytest.raises(ValueError, match="no speech split 'train'.*known splits: \\['all'\\]"):
        corpus.speech_files("train")


def test_corpus_errors_are_user_errors_for_the_command_line(tmp_path):
    from tvmse.errors import TvmseError

    with pytest.raises(TvmseError):
        Corpus.from_manifest(tmp_path / "nowhere.json")


def test_from_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="speech folder .*missing_dir does not exist"):
        Corpus.from_folder(tmp_path / "missing_dir", tmp_path / "empty")
    with pytest.raises(ValueError, match="no .wav or .flac files found in speech folder"):
        Corpus.from_folder(tmp_path / "empty", tmp_path / "empty")


def test_wrong_sample_rate_and_channels_are_rejected_by_name(tmp_path):
    write_tone(tmp_path / "fast.wav", rate=44100)
    write_tone(tmp_path / "stereo.wav", channels=2)
    corpus = Corpus.from_folder(tmp_path, tmp_path)
    with pytest.raises(ValueError, match="fast.wav has sample rate 44100 Hz"):
        corpus.load_speech(tmp_path / "fast.wav")
    with pytest.raises(ValueError, match="stereo.wav has 2 channels"):
        corpus.load_noise(tmp_path / "stereo.wav")
    sf.write(str(tmp_path / "silent.wav"), np.zeros(100), SAMPLE_RATE)
    with pytest.raises(ValueError, match="silent.wav is empty or silent"):
        corpus.load_speech(tmp_path / "silent.wav")


def make_manifest(root, **overrides):
    manifest = {"sample_rate": SAMPLE_RATE, "speech": {"dev": ["s.wav"]}, "noise": {"dev": ["n.wav"]}}
    manifest.update(overrides)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root / "manifest.json"


def test_from_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus manifest .*manifest.json does not exist"):
        Corpus.from_manifest(tmp_path)
    write_tone(tmp_path / "s.wav")
    write_tone(tmp_path / "n.wav")
    assert Corpus.from_manifest(make_manifest(tmp_path)).speech_files("dev")[0].name == "s.wav"
    with pytest.raises(ValueError, match="sample_rate=8000"):
        Corpus.from_manifest(make_manifest(tmp_path, sample_rate=8000))
    with pytest.raises(ValueError, match="'noise' must map split names"):
        Corpus.from_manifest(make_manifest(tmp_path, noise=["n.wav"]))
    with pytest.raises(FileNotFoundError, match="1 file\\(s\\) listed in .* are missing, e.g. .*gone.wav"):
        Corpus.from_manifest(make_manifest(tmp_path, speech={"dev": ["s.wav", "gone.wav"]}))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Corpus.from_manifest(tmp_path / "manifest.json")


def test_bundled_sample_manifest_matches_corpus_format():
    ours = json.loads((REPO / "examples" / "audio" / "manifest.json").read_text())
    assert set(ours) == {"sample_rate", "speech", "noise"} and ours["sample_rate"] == SAMPLE_RATE
    assert all(set(ours[kind]) == {"train", "dev"} for kind in ("speech", "noise"))


def test_shared_corpus_manifest_loads():
    assert (SHARED_CORPUS / "manifest.json").is_file(), f"corpus not found at {SHARED_CORPUS}: set TVMSE_CORPUS"
    corpus = Corpus.from_manifest(SHARED_CORPUS / "manifest.json")
    assert len(corpus.speech_files("train")) == 1050 and len(corpus.speech_files("dev")) == 100
    assert len(corpus.noise_files("dev")) == 16
    # the generalization protocol: 4 types held out of training, scored as dev_unseen
    assert len(corpus.noise_files("train")) == 12
    assert sorted(noise_type(p) for p in corpus.noise_files(UNSEEN_SPLIT)) == sorted(HELD_OUT_NOISE_TYPES)
    assert corpus.speech_files(UNSEEN_SPLIT) == corpus.speech_files("dev")


def test_held_out_noise_types_never_reach_training(tmp_path):
    """A manifest listing a held-out type for training loses it there; dev keeps every type; dev_unseen has it."""
    for rel in ("speech/dev/s.wav", "speech/train/t.wav", "noise/train/farm.wav", "noise/train/rain.wav",
                "noise/dev/farm.wav", "noise/dev/rain.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write_tone(tmp_path / rel)
    corpus = Corpus.from_folder(tmp_path / "speech", tmp_path / "noise")
    assert [p.name for p in corpus.noise_files("train")] == ["rain.wav"]
    assert [p.name for p in corpus.noise_files("dev")] == ["farm.wav", "rain.wav"]
    assert [p.name for p in corpus.noise_files(UNSEEN_SPLIT)] == ["farm.wav"]
    mixer = Mixer(corpus, "train")
    sources = {mixer.draw(np.random.default_rng([0, i]), 1600).noise_source for i in range(20)}
    assert sources == {"rain.wav"}


def test_copying_the_sample_keeps_it_loadable(tmp_path):
    """The corpus paths are relative to the manifest, so a moved copy still loads."""
    shutil.copytree(REPO / "examples" / "audio", tmp_path / "audio")
    corpus = Corpus.from_manifest(tmp_path / "audio" / "manifest.json")
    assert corpus.load_speech(corpus.speech_files("dev")[0]).dtype == np.float32
