"""The whole audio hop on the device: tvmse_process on QEMU equals the host integer pipeline sample for sample.

A 257-bin model is compiled for the Cortex-M55 with ``--run qemu --audio`` on the bundled noisy
recording: the generated tvmse_process (window, integer FFT, feature codes, tvmse_step, mask,
inverse FFT, overlap-add) runs every hop on QEMU and must equal tvmse.integer_hop around the host
reference. Also: the Ethos-U build's CPU code carries the same hop and compiles against its API, and
every misuse of --audio is one error line before any work.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tiny_models import tiny_model  # noqa: E402
from tvmse.compile import compile_model, main as compile_main  # noqa: E402
from tvmse.integer_hop import STREAM_DELAY, float_pipeline, for_graph, graph_network, to_int16  # noqa: E402
from tvmse.metrics import si_sdr  # noqa: E402
from tvmse.models.export import export_qdq_onnx  # noqa: E402
from tvmse.targets.host import HostReference  # noqa: E402

AUDIO = Path(__file__).resolve().parents[3] / "examples" / "audio"
NOISY = AUDIO / "noisy_sample.flac"


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return export_qdq_onnx(tiny_model(hidden=16, structure="block", sparsity=0.5),
                           tmp_path_factory.mktemp("hop") / "tiny.onnx")


@pytest.fixture(scope="module")
def audio_build(tiny_onnx, tmp_path_factory):
    return compile_model(tiny_onnx, target="cortex-m55", output_dir=tmp_path_factory.mktemp("hop") / "m55",
                         run="qemu", frames=2, audio=NOISY)


def test_the_recording_runs_bit_exact_through_tvmse_process(audio_build):
    audio = audio_build.report["audio"]
    noisy, rate = sf.read(NOISY, dtype="float32")
    assert audio["bit_exact_vs_host_integer_pipeline"] is True
    assert audio["samples"] == len(noisy) and audio["hops"] == -(-(len(noisy) + STREAM_DELAY) // 256)
    per_hop = audio["instructions_per_hop"]
    assert per_hop["pipeline"] > 10_000 and per_hop["network"] > 10_000
    assert per_hop["total"] == pytest.approx(per_hop["pipeline"] + per_hop["network"])
    assert set(audio["pipeline_functions"]) >= {"tvmse_process", "tvmse_audio_fft", "tvmse_audio_ifft"}
    markdown = (audio_build.output_dir / "report.md").read_text()
    assert "## The audio hop on QEMU" in markdown and "bit-exact" in markdown


def test_enhanced_wav_is_the_host_integer_pipeline_aligned_with_the_input(audio_build):
    written, rate = sf.read(audio_build.output_dir / "enhanced.wav", dtype="int16")
    noisy, _ = sf.read(NOISY, dtype="float32")
    hop, frame, mask = for_graph(audio_build.graph)
    stream, _ = hop.process(np.concatenate([to_int16(noisy), np.zeros(STREAM_DELAY, np.int16)]),
                            graph_network(audio_build.graph, HostReference(audio_build.graph), frame, mask))
    assert rate == 16000
    np.testing.assert_array_equal(written, stream[STREAM_DELAY:STREAM_DELAY + len(noisy)])


def test_the_ethos_u_build_carries_the_hop_and_it_compiles(tiny_onnx, tmp_path):
    from tvmse.targets.cortex_m.qemu import CPU_FLAGS, require_tool
    result = compile_model(tiny_onnx, output_dir=tmp_path / "npu", verify_trials=1)
    src = result.output_dir / "src"
    assert (src / "tvmse_audio.c").is_file() and "tvmse_process" in (src / "tvmse_audio.h").read_text()
    assert "tvmse_process" in result.report["artifacts"]["src/"]
    gcc = require_tool("arm-none-eabi-gcc")
    proc = subprocess.run([gcc, *CPU_FLAGS["gcc"], "-O2", "-Wall", "-Wextra", "-Werror", "-c",
                           str(src / "tvmse_audio.c"), "-o", str(tmp_path / "audio.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_model_the_hop_cannot_feed_gets_no_audio_files(small_onnx, tmp_path):
    result = compile_model(small_onnx, target="cortex-m55", output_dir=tmp_path / "small")
    assert not (result.output_dir / "src" / "tvmse_audio.c").exists()
    assert "one frame of 257 features" in json.dumps(result.report["artifacts"])


@pytest.mark.parametrize("extra, phrase", [
    (["--target", "cortex-m55", "--audio", str(NOISY)], "--audio applies only with --run qemu"),
    (["--audio", str(NOISY)], "--audio does not apply to --target ethos-u55"),
    (["--target", "cortex-m55", "--run", "qemu", "--audio", "missing.wav"], "cannot read audio file"),
])
def test_misused_audio_is_one_error_line_before_any_work(tiny_onnx, extra, phrase, tmp_path, capsys):
    out = tmp_path / "out"
    assert compile_main([str(tiny_onnx), "--output-dir", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and phrase in err and not out.exists()


def test_audio_with_a_model_of_other_frames_is_refused(small_onnx, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [str(small_onnx), "--target", "cortex-m55", "--run", "qemu", "--audio", str(NOISY), "--output-dir", str(out)]
    assert compile_main(argv) == 2
    err = capsys.readouterr().err
    assert "--audio cannot run" in err and "one frame of 257 features" in err and not out.exists()


def test_the_device_output_improves_on_the_noisy_input_like_the_float_pipeline(audio_build):
    """Random tiny weights do not enhance; what must hold is that the integer hop tracks the float STFT
    pipeline of the same compiled graph (SI-SDR within 0.3 dB)."""
    noisy, _ = sf.read(NOISY, dtype="float32")
    clean, _ = sf.read(AUDIO / "clean_sample.flac", dtype="float32")
    device, _ = sf.read(audio_build.output_dir / "enhanced.wav", dtype="float32")
    graph = audio_build.graph
    float_path = float_pipeline(graph, HostReference(graph), noisy)
    assert abs(si_sdr(clean, device) - si_sdr(clean, float_path)) < 0.3


def test_full_scale_input_stays_bit_exact(tiny_onnx, tmp_path):
    """The int32 bounds of the fixed-point FFTs hold at full scale: a square wave, a full-scale chirp and
    clipped noise, 48 kHz stereo in (resampled as enhance does)."""
    rate = 48_000
    t = np.arange(rate // 2) / rate
    rng = np.random.default_rng(1)
    mono = np.concatenate([np.sign(np.sin(2 * np.pi * 440 * t)), np.sin(2 * np.pi * (100 + 7000 * t) * t),
                           np.clip(3 * rng.standard_normal(len(t)), -1, 1)])
    recording = tmp_path / "loud.wav"
    sf.write(recording, np.stack([mono, mono], axis=1) * 0.9999, rate, subtype="PCM_16")   # averages to mono
    result = compile_model(tiny_onnx, target="cortex-m55", output_dir=tmp_path / "loud", run="qemu", frames=1,
                           audio=recording)
    assert result.report["audio"]["bit_exact_vs_host_integer_pipeline"] is True
    assert "48000 Hz, 2 channels" in result.report["audio"]["input"]
