"""The integer audio hop's host model (tvmse.integer_hop) against the float pipeline it stands for.

The C of tvmse_process is checked against this model bit for bit on QEMU
(tests/targets/cortex_m/test_audio_hop_qemu.py); here the model itself is checked against
numpy's FFT and tvmse.data.framing: spectra, feature codes, thresholds, reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tvmse.data import framing
from tvmse.integer_hop import (HOP, STREAM_DELAY, HopPipelineError, HopTables, IntegerHop, for_graph, to_int16)

SAMPLE = framing.SAMPLE_RATE
NOISY = "examples/audio/noisy_sample.flac"


@pytest.fixture(scope="module")
def hop():
    return IntegerHop(HopTables.for_model(1 / 127, 0, 1 / 256, -128))


def _signals():
    rng = np.random.default_rng(0)
    noise = to_int16(0.3 * rng.standard_normal(SAMPLE // 2))
    loud = to_int16(np.clip(2.0 * rng.standard_normal(SAMPLE // 4), -1, 1))        # full-scale, clipped
    sine = to_int16(0.999 * np.sin(2 * np.pi * 1000 * np.arange(SAMPLE // 4) / SAMPLE))
    speech = to_int16(sf.read(NOISY, dtype="float32")[0])
    return {"noise": noise, "full scale": loud, "sine": sine, "speech": speech}


@pytest.mark.parametrize("name", ["noise", "full scale", "sine", "speech"])
def test_spectra_are_the_float_stft_in_q20(hop, name):
    x = _signals()[name]
    re, im = hop.spectra(hop.frames(x))
    expected = framing.stft(x.astype(np.float64) / 32768)[:len(re)]
    error = np.abs((re + 1j * im) / 2.0 ** 20 - expected)
    # the Q15 window's rounding is the largest error: ~2^-16 relative to the largest bin
    assert error.max() <= 4e-5 * max(1.0, np.abs(expected).max())
    assert np.abs(re).max() < 2 ** 31 and np.abs(im).max() < 2 ** 31


def test_feature_codes_are_the_float_features_quantized(hop):
    x = _signals()["speech"]
    re, im = hop.spectra(hop.frames(x))
    spectrum = framing.stft(x.astype(np.float64) / 32768)[:len(re)]
    float_codes = np.clip(np.round(framing.features(spectrum) * 127), -128, 127)
    codes = hop.feature_codes(re, im)
    diff = np.abs(codes.astype(int) - float_codes)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.002


@pytest.mark.parametrize("scale, zero_point", [(1 / 127, 0), (0.0091, -7), (1 / 100, -20)])
def test_each_threshold_is_where_the_float_feature_map_steps_to_the_next_code(scale, zero_point):
    tables = HopTables.for_model(scale, zero_point, 1 / 256, -128)

    def float_code(power_q40: float) -> int:
        amplitude = np.sqrt(power_q40 / 2.0 ** 40)
        f = framing.features(np.full(framing.N_BINS, amplitude, np.complex64))[0]
        return int(np.clip(np.round(np.float32(f) / np.float32(scale) + zero_point), -128, 127))

    checked = 0
    for j, t in enumerate(tables.thresholds):
        if t < 2 ** 20:         # below ~-83 dB float32 features cannot resolve the step
            continue
        assert float_code(t * (1 + 1e-4)) == tables.code_min + j + 1
        assert float_code(t * (1 - 1e-4)) == tables.code_min + j
        checked += 1
    assert checked > 150


def test_unit_gain_reconstructs_the_input_a_hop_later():
    hop = IntegerHop(HopTables.for_model(1 / 127, 0, 1 / 128, 0))   # mask code 127 = gain 127/128
    x = _signals()["speech"]
    stream, mask = hop.process(np.concatenate([x, np.zeros(STREAM_DELAY, np.int16)]),
                               lambda codes: np.full(codes.shape, 127, np.int8))
    assert mask.shape == (len(stream) // HOP, framing.N_BINS)
    out = stream[STREAM_DELAY:STREAM_DELAY + len(x)].astype(float)
    assert np.abs(out - x.astype(float) * 127 / 128).max() <= 2.0
    assert np.abs(stream[:STREAM_DELAY]).max() == 0       # the first hop completes the silent history


def test_gains_follow_the_mask_quantization_and_saturate():
    tables = HopTables.for_model(1 / 127, 0, 1 / 256, -128)
    assert tables.gains[0] == 0 and tables.gains[255] == round(255 / 256 * 2 ** 14)
    wide = HopTables.for_model(1 / 127, 0, 0.05, 0)            # gains up to 6.35 clip at 2 (Q14)
    assert wide.gains.max() == 32767 and wide.gains.min() == -32768


def test_a_model_without_257_features_in_and_out_is_refused(small_graph):
    with pytest.raises(HopPipelineError, match="one frame of 257 features"):
        for_graph(small_graph)


def test_bad_samples_are_refused(hop):
    with pytest.raises(ValueError, match="int16"):
        hop.frames(np.zeros(10, np.float32))


def test_chunked_processing_equals_one_chunk(hop):
    x = _signals()["speech"]
    network = lambda codes: (codes // 2).astype(np.int8)   # noqa: E731 - any stateless map of codes
    whole, mask = hop.process(x, network, chunk=10_000)
    for chunk in (1, 7, 64):
        pieces, pieces_mask = hop.process(x, network, chunk=chunk)
        np.testing.assert_array_equal(pieces, whole)
        np.testing.assert_array_equal(pieces_mask, mask)
