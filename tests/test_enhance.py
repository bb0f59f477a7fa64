"""`tvmse enhance`: any rate and channel count in, the input's length out, better SI-SDR than the input,
and with --compiled exactly what the device computes: the integer hop around the compiled graph."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_models import tiny_model  # noqa: E402
from tvmse import enhance as enhance_mod  # noqa: E402
from tvmse.data import MixtureSet, bundled_sample_corpus, stft  # noqa: E402
from tvmse.metrics import si_sdr  # noqa: E402

AUDIO = Path(__file__).resolve().parents[1] / "examples" / "audio"
NOISY, CLEAN = AUDIO / "noisy_sample.flac", AUDIO / "clean_sample.flac"


def test_bundled_sample_is_the_documented_mixture():
    m = MixtureSet(bundled_sample_corpus(), "dev", n=1, seed=0)[0]
    noisy, rate = sf.read(NOISY, dtype="float32")
    clean, _ = sf.read(CLEAN, dtype="float32")
    assert rate == 16000
    np.testing.assert_allclose(noisy, m.noisy, atol=1 / 32768)
    np.testing.assert_allclose(clean, m.clean, atol=1 / 32768)


def test_cli_enhances_the_bundled_sample(bundled_model, tmp_path, capsys):
    out = tmp_path / "enhanced.wav"
    assert enhance_mod.main([str(NOISY), "-o", str(out), "--model", str(bundled_model), "--clean", str(CLEAN)]) == 0
    printed = capsys.readouterr().out
    assert "si_sdr" in printed and "pesq" in printed and "stoi" in printed and "sdr" in printed
    enhanced, rate = sf.read(out, dtype="float32")
    noisy, _ = sf.read(NOISY, dtype="float32")
    clean, _ = sf.read(CLEAN, dtype="float32")
    assert rate == 16000 and enhanced.shape == noisy.shape
    assert si_sdr(clean, enhanced) > si_sdr(clean, noisy) + 3.0
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_48k_stereo_in_gives_48k_mono_of_the_same_length_and_improves(bundled_model, tmp_path, caplog):
    from scipy.signal import resample_poly
    noisy, _ = sf.read(NOISY, dtype="float32")
    clean, _ = sf.read(CLEAN, dtype="float32")
    up = resample_poly(noisy, 3, 1)
    stereo = tmp_path / "noisy48.wav"
    sf.write(stereo, np.stack([up, 0.8 * up], axis=1), 48000)
    caplog.set_level("INFO", logger="tvmse")
    result = enhance_mod.enhance(stereo, tmp_path / "out.wav", model=bundled_model, clean=CLEAN, plot=False)
    assert "resampled from 48000 Hz" in caplog.text and "channels averaged" in caplog.text
    written, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 48000 and written.ndim == 1 and len(written) == len(up)
    assert result.scores["enhanced"]["si_sdr"] > result.scores["noisy"]["si_sdr"] + 3.0
    assert si_sdr(clean, resample_poly(written, 1, 3)[:len(clean)]) > si_sdr(clean, noisy) + 3.0


@pytest.fixture(scope="module")
def compiled_tiny(tmp_path_factory):
    """A 257-bin tiny model compiled for Ethos-U55: its folder and the CompileResult."""
    from tvmse.compile import compile_model
    from tvmse.models.export import export_qdq_onnx
    folder = tmp_path_factory.mktemp("compiled")
    onnx = export_qdq_onnx(tiny_model(hidden=16, structure="block", sparsity=0.5), folder / "tiny.onnx")
    return compile_model(onnx, output_dir=folder / "build", verify_trials=1)


def test_compiled_output_is_the_integer_hop_around_the_compiled_graph(compiled_tiny, tmp_path):
    """--compiled runs what tvmse_process computes (bit-exact on QEMU: test_audio_hop_qemu.py), aligned."""
    from tvmse.integer_hop import STREAM_DELAY, float_pipeline, for_graph, graph_network, to_int16
    from tvmse.targets.host import HostReference
    result = enhance_mod.enhance(NOISY, tmp_path / "c.wav", compiled=compiled_tiny.output_dir, plot=False)
    graph = compiled_tiny.graph
    noisy = enhance_mod.read_audio(NOISY).mono16k
    hop, frame, mask = for_graph(graph)
    stream, codes = hop.process(np.concatenate([to_int16(noisy), np.zeros(STREAM_DELAY, np.int16)]),
                                graph_network(graph, HostReference(graph), frame, mask))
    expected = stream[STREAM_DELAY:STREAM_DELAY + len(noisy)].astype(np.float32) / 32768
    np.testing.assert_array_equal(result.enhanced_16k, expected)
    assert result.mask.shape == codes.shape == (len(stft(noisy)), 257)
    written, _ = sf.read(tmp_path / "c.wav", dtype="float32")
    np.testing.assert_allclose(written, expected, atol=1 / 32768)
    clean = enhance_mod.read_audio(CLEAN).mono16k
    float_path = float_pipeline(graph, HostReference(graph), noisy)
    assert abs(si_sdr(clean, result.enhanced_16k) - si_sdr(clean, float_path)) < 0.3


def test_evaluate_scores_a_compiled_folder(compiled_tiny, tmp_path):
    from tvmse import evaluate
    mask_function = evaluate.load_mask_function(compiled_tiny.output_dir)
    noisy = enhance_mod.read_audio(NOISY).mono16k
    direct = enhance_mod.enhance(NOISY, compiled=compiled_tiny.output_dir, plot=False).enhanced_16k
    np.testing.assert_array_equal(evaluate.enhance(mask_function, noisy), direct)


def test_a_model_of_another_frame_size_is_refused(small_onnx, capsys):
    assert enhance_mod.main([str(NOISY), "-o", "x.wav", "--model", str(small_onnx)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "takes frames of shape [1, 40]" in err


@pytest.mark.parametrize("argv, phrase", [
    (["missing.wav", "-o", "x.wav", "--model", "m.onnx"], "cannot read audio file"),
    ([str(NOISY), "-o", "x.wav", "--compiled", "."], "integer_graph.json"),
    ([str(NOISY), "-o", str(NOISY), "--model", "m.onnx"], "is the input file"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(argv, phrase, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = NOISY.read_bytes()
    assert enhance_mod.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and phrase in err
    assert [line for line in err.splitlines() if line.startswith("tvmse: error:")]
    assert not (tmp_path / "x.wav").exists() and NOISY.read_bytes() == before
