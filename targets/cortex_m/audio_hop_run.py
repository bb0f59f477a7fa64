"""``compile --target cortex-m55 --run qemu --audio FILE``: a recording through ``tvmse_process`` on QEMU.

The recording is read as ``tvmse enhance`` reads it (16 kHz mono), converted to int16 as a 16-bit ADC
would deliver it, followed by one hop of silence so the last samples leave the overlap-add, and
streamed hop by hop through the generated ``tvmse_process`` (``audio_hop``). Every output sample
must equal the host model of the integer hop (``tvmse.integer_hop``) run with the host reference as
the network. The output folder gains ``enhanced.wav`` (aligned with the input: the stream's one-hop
delay removed) and the report an ``audio`` section (keys documented in the README).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from tvmse.errors import ConfigError
from tvmse.integer_hop import HOP, STREAM_DELAY, for_graph, to_int16
from tvmse.targets.cortex_m import audio_hop

ENHANCED_FILE = "enhanced.wav"


class AudioOptionError(ConfigError):
    """``--audio`` cannot be honoured (no QEMU run, a model the hop pipeline cannot feed, too long a file)."""


@dataclasses.dataclass
class Recording:
    path: Path
    description: str
    samples: np.ndarray   # int16, 16 kHz mono


def read_recording(path, run: str | None) -> Recording:
    """Check ``--audio`` before any work: it needs ``--run qemu`` and a readable file short enough for the
    emulated memory."""
    from tvmse.data.framing import SAMPLE_RATE
    from tvmse.enhance import read_audio
    if run != "qemu":
        raise AudioOptionError("--audio streams the recording through tvmse_process on QEMU: add --run qemu")
    audio = read_audio(path)
    seconds = len(audio.mono16k) / SAMPLE_RATE
    if seconds > audio_hop.MAX_AUDIO_SECONDS:
        raise AudioOptionError(f"--audio {path} lasts {seconds:.1f} s; the emulated Corstone-300 keeps at most "
                               f"{audio_hop.MAX_AUDIO_SECONDS:g} s of output: cut the recording")
    return Recording(Path(path), audio.describe(), to_int16(audio.mono16k))


def run_recording(graph, glue, staging: Path, reference, recording: Recording) -> dict:
    """Stream the recording on QEMU (bit-exact check), write ``enhanced.wav``; the report's ``audio`` section."""
    from tvmse.data.framing import SAMPLE_RATE
    from tvmse.enhance import _write_wav
    hop, frame, mask = for_graph(graph)
    length = len(recording.samples)
    stream_in = np.concatenate([recording.samples, np.zeros(STREAM_DELAY, np.int16)])
    with tempfile.TemporaryDirectory(prefix="tvmse-m55-audio-") as work:
        run = audio_hop.run_on_qemu(graph, glue, staging / "src", reference, stream_in, hop, frame, mask, Path(work))
    enhanced = run.output[STREAM_DELAY:STREAM_DELAY + length]
    _write_wav(staging / ENHANCED_FILE, enhanced.astype(np.float32) / 32768.0, SAMPLE_RATE)
    return {
        "file": str(recording.path), "input": recording.description, "samples": length, "hops": run.hops,
        "hop_samples": HOP, "bit_exact_vs_host_integer_pipeline": run.bit_exact,
        "instructions_per_hop": {"pipeline": run.pipeline_instructions_per_hop,
                                 "network": run.network_instructions_per_hop, "total": run.instructions_per_hop},
        "pipeline_functions": run.per_function, "stack_high_water": run.stack_bytes, "output": ENHANCED_FILE,
        "note": "executed instructions counted by QEMU, not cycles",
    }


def artifacts(files: dict[str, str], unavailable: str | None, section: dict | None) -> dict[str, str]:
    """Artifact lines of the audio hop for the report."""
    out = {}
    if files:
        out[f"src/{audio_hop.HEADER}"] = "the audio hop API: tvmse_audio_init, tvmse_process(in[256], out[256], state)"
        out[f"src/{audio_hop.SOURCE}"] = "window, integer real FFT, feature codes, tvmse_step, mask, inverse FFT, overlap-add"
    else:
        out["src/ (no tvmse_audio.c)"] = f"no audio hop: {unavailable}"
    if section is not None:
        out[ENHANCED_FILE] = f"{Path(section['file']).name} enhanced by tvmse_process on QEMU (16 kHz, aligned)"
    return out


def markdown(section: dict | None) -> list[str]:
    """The report.md lines of the audio run."""
    if section is None:
        return []
    per_hop = section["instructions_per_hop"]
    rows = [f"| {name} | {count:,.0f} |" for name, count in section["pipeline_functions"].items()]
    return ["## The audio hop on QEMU", "",
            f"`{Path(section['file']).name}` ({section['input']}) streamed through `tvmse_process` in "
            f"{section['hops']:,} hops of {section['hop_samples']} samples: **bit-exact** against the host model of "
            f"the integer pipeline; output in `{section['output']}`. {section['note'][0].upper() + section['note'][1:]}.", "",
            "| instructions per hop | count |", "|---|---:|",
            f"| audio pipeline (window, FFTs, features, mask, overlap-add) | {per_hop['pipeline']:,.0f} |",
            f"| network (tvmse_step and its kernels) | {per_hop['network']:,.0f} |",
            f"| total | {per_hop['total']:,.0f} |", "", "Pipeline functions (own instructions per hop):", "",
            "| function | instructions |", "|---|---:|", *rows, ""]
