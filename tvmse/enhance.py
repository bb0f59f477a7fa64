"""Enhance a noisy recording with a model or a compiled build: ``tvmse enhance NOISY.wav -o OUT.wav``.

Usage::

    tvmse enhance noisy.wav -o enhanced.wav --model examples/tinylstm_int8.onnx
    tvmse enhance noisy.wav -o enhanced.wav --compiled out/tinylstm_int8-ethos-u55-128 --clean clean.wav

Any sample rate and channel count is read; the model hears 16 kHz mono (channels averaged,
resampled with a polyphase filter, both said on stderr). The output has the input's sample rate and
exactly its number of samples, in one channel.

``--model`` runs a QDQ ONNX step in onnxruntime frame by frame (or a ``.pt`` checkpoint in torch);
``--compiled`` runs what the device runs: the integer audio hop of the firmware's ``tvmse_process``
(``tvmse.integer_hop``: fixed-point window, FFT, feature codes, mask, inverse FFT, overlap-add) around
the integer form the ``tvmse compile`` output folder holds (``integer_graph.json``), stepped by the
host reference (``tvmse.targets.host``), which every compiled target matches bit for bit: what you
hear is what the device computes from the same samples. ``--clean REF`` prints SDR,
SI-SDR, PESQ-WB and STOI of the noisy input and of the output against the reference (at 16 kHz).
A PNG beside the output shows the noisy and enhanced spectrograms and the mask.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np

from tvmse.data import apply_mask, features, istft, stft
from tvmse.data.framing import HOP, N_BINS, SAMPLE_RATE
from tvmse.errors import ModelFileError, OutputError, TvmseError, run_command
from tvmse.progress import progress

log = logging.getLogger("tvmse.enhance")


class AudioFileError(TvmseError):
    """An audio file is missing, unreadable or unusable (empty, a different length than its pair)."""


@dataclass
class Audio:
    """A recording as read, and its 16 kHz mono version the model hears."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    mono16k: np.ndarray

    def describe(self) -> str:
        kind = "mono" if self.channels == 1 else f"{self.channels} channels"
        return f"{self.path}: {self.sample_rate} Hz, {kind}, {self.frames / self.sample_rate:.2f} s"


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``, Kaiser window); identity when the rates agree."""
    if rate_in == rate_out:
        return np.asarray(x, np.float32)
    from scipy.signal import resample_poly
    g = gcd(rate_in, rate_out)
    return resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def read_audio(path: str | os.PathLike) -> Audio:
    """Read any soundfile-readable file; average the channels and resample to 16 kHz."""
    import soundfile as sf
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as err:
        raise AudioFileError(f"cannot read audio file {path}: {err}; give a .wav/.flac file") from None
    if len(data) == 0:
        raise AudioFileError(f"audio file {path} has no samples")
    mono = data.mean(axis=1)
    return Audio(path, int(rate), data.shape[1], len(data), resample(mono, int(rate), SAMPLE_RATE))


def _fit_length(x: np.ndarray, length: int) -> np.ndarray:
    return np.pad(x[:length], (0, max(0, length - len(x))))


# ---- mask functions: features [T, n_bins] → mask [T, n_bins] -------------------------------------
def model_masks(path: str | os.PathLike, quiet: bool = True):
    """A QDQ ONNX step (onnxruntime, one frame per call) or a .pt checkpoint (torch)."""
    from tvmse.evaluate import load_mask_function
    if Path(path).suffix != ".onnx":
        return load_mask_function(path)
    from tvmse.onnx_runtime import StepRunner, quantize_features
    runner = StepRunner(path)
    _check_frame_shape(path, runner.session.get_inputs()[0].shape)

    def run(feats: np.ndarray) -> np.ndarray:
        frames, state = quantize_features(feats), runner.initial_state()
        masks = np.empty(frames.shape, np.int8)
        for t in progress(range(len(frames)), desc="enhance", quiet=quiet, unit="frames"):
            mask, state = runner.step(frames[t:t + 1], state)
            masks[t] = mask[0]
        return runner.dequantize_mask(masks)

    return run


def load_integer_graph(folder: str | os.PathLike):
    """The compiled integer form a ``tvmse compile`` output folder holds."""
    import tvm

    from tvmse.compile import INTEGER_GRAPH_FILE
    from tvmse.ir import IntegerGraph
    path = Path(folder) / INTEGER_GRAPH_FILE
    if not path.is_file():
        raise ModelFileError(f"{folder} holds no {INTEGER_GRAPH_FILE}: not a tvmse compile output folder, or one "
                             "written by an older tvmse; compile the model again")
    return IntegerGraph.from_module(tvm.ir.load_json(path.read_text()))


class CompiledHop:
    """A compile output folder run as the device runs it: the integer audio hop (``tvmse.integer_hop``,
    what the firmware's ``tvmse_process`` computes, bit for bit) around the compiled integer graph, which
    the host reference steps hop by hop with the state carried."""

    def __init__(self, folder: str | os.PathLike, quiet: bool = True):
        from tvmse.integer_hop import HopPipelineError, for_graph, graph_network
        from tvmse.targets.host import HostReference
        graph = load_integer_graph(folder)
        try:
            self.hop, frame, mask = for_graph(graph)
        except HopPipelineError as exc:
            raise ModelFileError(f"{folder}: {exc}") from None
        self.mask_info = graph.tensors()[mask]
        self.network = graph_network(graph, HostReference(graph), frame, mask, progress=lambda items, total: progress(
            items, total, desc="enhance", quiet=quiet, unit="hops"))

    def enhance(self, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(enhanced float32 [len(noisy)], mask float32 [frames, bins]) of a 16 kHz signal, aligned with it:
        the signal as int16, one hop of silence appended to flush the overlap-add, the stream's one-hop
        delay removed."""
        from tvmse.integer_hop import STREAM_DELAY, to_int16
        samples = np.concatenate([to_int16(noisy), np.zeros(STREAM_DELAY, np.int16)])
        stream, codes = self.hop.process(samples, self.network)
        enhanced = stream[STREAM_DELAY:STREAM_DELAY + len(noisy)].astype(np.float32) / np.float32(32768)
        mask = (codes.astype(np.float32) - self.mask_info.zero_point) * np.float32(self.mask_info.scale)
        return enhanced, mask


def _check_frame_shape(model, shape) -> None:
    if list(shape) != [1, N_BINS]:
        raise ModelFileError(f"{model} takes frames of shape {list(shape)}; enhance feeds the {N_BINS}-bin spectrum "
                             f"of a 512-point STFT ([1, {N_BINS}]): give a model of that input")


# ---- the enhancement -----------------------------------------------------------------------------
@dataclass
class EnhanceResult:
    enhanced: np.ndarray            # at the input's sample rate, mono, as many samples as the input
    sample_rate: int
    enhanced_16k: np.ndarray        # what the model produced, 16 kHz mono
    noisy_16k: np.ndarray
    mask: np.ndarray                # [frames, bins]
    scores: dict[str, dict[str, float]] | None = None  # noisy / enhanced / improvement, with a clean reference
    written: list[Path] = field(default_factory=list)


def enhance_signal(mask_function, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(enhanced, mask, enhanced spectrum) of a 16 kHz signal: ``istft(stft(x) · mask, len(x))``, delay 0."""
    spectrum = stft(noisy)
    mask = mask_function(features(spectrum))
    enhanced_spectrum = apply_mask(spectrum, mask)
    return istft(enhanced_spectrum, len(noisy)), mask, enhanced_spectrum


def score(clean: Audio, noisy: np.ndarray, enhanced: np.ndarray) -> dict[str, dict[str, float]]:
    """SDR, SI-SDR, PESQ-WB, STOI of the noisy input and of the output against the clean reference."""
    from tvmse.evaluate import summarize
    from tvmse.metrics import evaluate_pair
    reference = clean.mono16k
    if abs(len(reference) - len(noisy)) > HOP:
        raise AudioFileError(f"clean reference {clean.path} lasts {len(reference) / SAMPLE_RATE:.2f} s, the noisy "
                             f"input {len(noisy) / SAMPLE_RATE:.2f} s; give the clean signal of this recording")
    reference = _fit_length(reference, len(noisy))
    return summarize([evaluate_pair(reference, noisy)], [evaluate_pair(reference, enhanced)])


def enhance(noisy: str | os.PathLike, output: str | os.PathLike | None = None, *,
            model: str | os.PathLike | None = None, compiled: str | os.PathLike | None = None,
            clean: str | os.PathLike | None = None, plot: str | os.PathLike | bool = True,
            quiet: bool = True) -> EnhanceResult:
    """Enhance the recording ``noisy`` with ``model`` (.onnx/.pt) or ``compiled`` (a compile output folder).

    The parameters are ``tvmse enhance``'s options; ``output`` (a .wav path) is written if given,
    ``plot`` is the spectrogram PNG's path (True: beside ``output``; False: none). Returns the audio,
    the mask and, with ``clean``, the scores.
    """
    if (model is None) == (compiled is None):
        raise TvmseError("give exactly one of model (an .onnx/.pt file) and compiled (a compile output folder)")
    audio = read_audio(noisy)
    if output is not None and Path(output).resolve() == audio.path.resolve():
        raise OutputError(f"output {output} is the input file; choose another -o path")
    if audio.sample_rate != SAMPLE_RATE or audio.channels != 1:
        log.info("%s → 16 kHz mono for the model (%s)", audio.describe(), ", ".join(
            (["channels averaged"] if audio.channels > 1 else []) +
            ([f"resampled from {audio.sample_rate} Hz"] if audio.sample_rate != SAMPLE_RATE else [])))
    if compiled is not None:
        enhanced_16k, mask = CompiledHop(compiled, quiet).enhance(audio.mono16k)
        enhanced_spectrum = stft(enhanced_16k)
    else:
        enhanced_16k, mask, enhanced_spectrum = enhance_signal(model_masks(model, quiet), audio.mono16k)
    enhanced = _fit_length(resample(enhanced_16k, SAMPLE_RATE, audio.sample_rate), audio.frames)
    result = EnhanceResult(enhanced, audio.sample_rate, enhanced_16k, audio.mono16k, mask)
    if clean is not None:
        result.scores = score(read_audio(clean), audio.mono16k, enhanced_16k)
    if output is not None:
        result.written.append(_write_wav(Path(output), enhanced, audio.sample_rate))
    plot_path = _plot_path(plot, output)
    if plot_path is not None:
        from tvmse.plots import spectrogram_plot
        source = f"compiled {Path(compiled).name}" if compiled is not None else Path(model).name
        spectrogram_plot(plot_path, stft(audio.mono16k), enhanced_spectrum, mask, SAMPLE_RATE, HOP,
                         f"{audio.path.name} enhanced by {source}")
        result.written.append(plot_path)
    return result


def _plot_path(plot, output) -> Path | None:
    if plot is False or plot is None:
        return None
    if plot is True:
        return Path(output).with_suffix(".png") if output is not None else None
    return Path(plot)


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM, written to a temporary name beside ``path`` and renamed into place."""
    import soundfile as sf
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(temporary), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror or err}; choose a writable -o path") from None
    return path


# ---- command line --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from tvmse.cli import command_parser
    p = command_parser("enhance", __doc__)
    p.add_argument("noisy", help="noisy recording (.wav, .flac, …; any sample rate and channel count)")
    p.add_argument("-o", "--output", required=True, help="enhanced .wav to write (input's rate, mono)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="QDQ ONNX step (.onnx) or training checkpoint (.pt)")
    source.add_argument("--compiled", metavar="OUTDIR", help="a `tvmse compile` output folder: run its integer graph")
    p.add_argument("--clean", metavar="REF", help="clean reference: print SDR, SI-SDR, PESQ, STOI")
    p.add_argument("--plot", metavar="PNG", help="spectrogram image (default: the output path with .png)")
    p.add_argument("--no-plot", action="store_true", help="write no spectrogram image")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, only the result lines")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, _enhance)


def _enhance(args: argparse.Namespace) -> None:
    if args.quiet:
        logging.getLogger("tvmse").setLevel(logging.WARNING)
    plot = False if args.no_plot else (args.plot or True)
    result = enhance(args.noisy, args.output, model=args.model, compiled=args.compiled, clean=args.clean,
                     plot=plot, quiet=args.quiet)
    print(f"wrote {args.output}: {result.sample_rate} Hz mono, {len(result.enhanced)} samples (as the input)")
    for path in result.written[1:]:
        print(f"wrote {path}: noisy / enhanced spectrograms and the mask")
    if result.scores:
        from tvmse.evaluate import format_summary
        print(f"against {args.clean}:")
        print(format_summary(result.scores))


if __name__ == "__main__":
    sys.exit(main())
