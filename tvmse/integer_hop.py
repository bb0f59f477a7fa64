"""The audio hop in integers: the host model of the firmware's ``tvmse_process()``, bit for bit.

The device turns each hop of ``HOP`` microphone samples (int16) into ``HOP`` enhanced samples with no
floating point. This module defines that computation once, as numpy integer arithmetic, and
``targets.cortex_m.audio_hop`` writes the same steps as C with the constants made here; a QEMU run
of the C equals this model sample for sample. The steps follow ``tvmse.data.framing`` (the float
pipeline training and evaluation use), in fixed point:

1. **Analysis**: the last ``N_FFT`` samples (history starts as zeros) times the periodic sqrt-Hann
   window in Q15, rounded to **Q20** (full scale 1.0 = 2**20). Q20 rather than more bits so that
   every later intermediate fits int32 even for gains up to 2 (bounds below).
2. **Real FFT** of ``N_FFT`` points as a complex FFT of ``M = N_FFT / 2`` points over
   ``z[n] = x[2n] + i x[2n+1]`` (radix-2, decimation in time, no scaling) and the split step
   ``X[k] = (2Fe[k] + W_N^k 2Fo[k]) / 2``. Twiddles are Q30; every product is int64 and rounded
   half up (``(p + 2**29) >> 30``). ``X`` is the unnormalised ``rfft`` of the windowed frame in Q20:
   ``|X| <= 2**20 * sum(window) < 2**28.4``.
3. **Features**: the power ``Xr**2 + Xi**2`` (int64) is compared with one threshold per int8 code of
   the model's input: the code is ``code_min`` plus the number of thresholds at or below the power.
   The thresholds are where ``features()`` (log power mapped to [-1, 1]) followed by the model
   input's quantization steps to the next code, so no logarithm runs on the device.
4. ``tvmse_step(codes) → mask codes`` (the compiled network, state carried).
5. **Mask**: gain per mask code from a table in **Q14** (``(code - zero_point) * scale``, clipped to
   [-2, 2)), ``Y = (X * gain + 2**13) >> 14``: ``|Y| < 2**29.4``.
6. **Inverse real FFT**: the inverse split ``2Z[k] = 2Fe[k] + i 2Fo[k]`` (rounded halving), then the
   inverse complex FFT halving after each of its stages (``(a ± t + 1) >> 1``), which divides by
   ``M`` as ``irfft`` requires: ``|Z| <= |Y[k]| + |Y[M-k]| < 2**30.4``, and halving stages never grow.
7. **Synthesis**: times the same window (Q15), rounded to Q15 samples (``>> 20``), overlap-added in
   int32 with the previous hop's tail, saturated to int16.

Streaming semantics are ``framing.StreamingSTFT`` / ``StreamingISTFT``: hop ``k`` returns output
samples ``[(k - 1) * HOP, k * HOP)``, so the stream lags its input by ``STREAM_DELAY`` samples.
Every function here works on a batch of hops at once (the analysis does not depend on the network),
which is exactly equal to running them one hop at a time.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tvmse.data.framing import (FEATURE_DB_HIGH, FEATURE_DB_LOW, HOP, N_BINS, N_FFT, POWER_FLOOR, STREAM_DELAY,
                                analysis_window)
from tvmse.errors import UnsupportedModelError

M = N_FFT // 2             # points of the complex FFT
WINDOW_BITS = 15           # window in Q15
SPECTRUM_BITS = 20         # samples and spectra in Q20
TWIDDLE_BITS = 30          # twiddles in Q30
GAIN_BITS = 14             # mask gains in Q14
GAIN_LIMIT = 2.0           # gains are clipped to [-GAIN_LIMIT, GAIN_LIMIT)
ANALYSIS_SHIFT = 2 * WINDOW_BITS - SPECTRUM_BITS     # Q15 sample x Q15 window -> Q20
SYNTHESIS_SHIFT = SPECTRUM_BITS                      # Q20 frame x Q15 window -> Q15 sample


class HopPipelineError(UnsupportedModelError):
    """The model cannot be driven by the audio hop pipeline (not a 257-feature → 257-bin mask step)."""


__all__ = ["HopPipelineError", "for_graph", "graph_network", "float_pipeline", "HopTables", "IntegerHop", "M", "HOP", "N_BINS", "STREAM_DELAY", "to_int16", "bit_reversal"]


def _round_shift(values: np.ndarray, bits: int) -> np.ndarray:
    """``(v + 2**(bits-1)) >> bits`` on int64: rounding half up, as the C code does."""
    return (values + (1 << (bits - 1))) >> bits


def bit_reversal(size: int = M) -> np.ndarray:
    """Index permutation of a radix-2 decimation-in-time FFT of ``size`` points."""
    bits = int(math.log2(size))
    return np.array([int(f"{i:0{bits}b}"[::-1], 2) for i in range(size)], np.int64)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) to int16, rounded and saturated: what a 16-bit ADC delivers."""
    return np.clip(np.round(np.asarray(samples, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _q(values: np.ndarray, bits: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(values, np.float64) * (1 << bits)), info.min, info.max).astype(dtype)


@dataclasses.dataclass(frozen=True)
class HopTables:
    """Every constant of the integer hop; ``targets.cortex_m.audio_hop`` writes them into the C source.

    ``thresholds[j]`` is the smallest power (Q40, int64) whose feature code is ``code_min + j + 1``.
    ``gains[c + 128]`` is the Q14 gain of mask code ``c``.
    """

    window: np.ndarray          # int16[N_FFT], Q15
    fft_twiddles: np.ndarray    # int32[2, M/2]: cos, -sin of 2*pi*j/M, Q30
    split_twiddles: np.ndarray  # int32[2, M+1]: cos, -sin of 2*pi*k/N_FFT, Q30
    thresholds: np.ndarray      # int64[codes - 1]
    code_min: int
    gains: np.ndarray           # int16[256], Q14

    @classmethod
    def for_model(cls, frame_scale: float, frame_zero_point: int, mask_scale: float,
                  mask_zero_point: int) -> "HopTables":
        """The tables of a model whose int8 input is the feature frame quantized with ``frame_scale`` /
        ``frame_zero_point`` and whose int8 output is the mask with ``mask_scale`` / ``mask_zero_point``."""
        window = _q(analysis_window(), WINDOW_BITS, np.int16)
        j = np.arange(M // 2)
        fft = np.stack([_q(np.cos(2 * np.pi * j / M), TWIDDLE_BITS, np.int32),
                        _q(-np.sin(2 * np.pi * j / M), TWIDDLE_BITS, np.int32)])
        k = np.arange(M + 1)
        split = np.stack([_q(np.cos(2 * np.pi * k / N_FFT), TWIDDLE_BITS, np.int32),
                          _q(-np.sin(2 * np.pi * k / N_FFT), TWIDDLE_BITS, np.int32)])
        code_min, thresholds = _feature_thresholds(float(frame_scale), int(frame_zero_point))
        codes = np.arange(-128, 128, dtype=np.float64)
        gain = np.clip((codes - mask_zero_point) * float(mask_scale), -GAIN_LIMIT, GAIN_LIMIT)
        return cls(window, fft, split, thresholds, code_min, _q(gain, GAIN_BITS, np.int16))


def _feature_thresholds(scale: float, zero_point: int) -> tuple[int, np.ndarray]:
    """``code_min`` and the int64 power thresholds of each further code (see the module docstring).

    ``features()`` maps dB = 10 log10(P + floor) affinely onto [-1, 1] (clipped); the model input code is
    round(f / scale + zero_point), clipped to int8. Code c is reached where f / scale + zero_point >= c - 1/2.
    """
    def code_of(f: float) -> int:
        return int(np.clip(np.round(f / scale + zero_point), -128, 127))

    code_min, code_max = sorted((code_of(-1.0), code_of(1.0)))
    if code_max == code_min:
        raise ValueError(f"the model's frame quantization (scale {scale:g}, zero point {zero_point}) gives one "
                         "code for the whole feature range [-1, 1]")
    codes = np.arange(code_min + 1, code_max + 1, dtype=np.float64)
    f = (codes - 0.5 - zero_point) * scale
    if scale < 0:
        raise ValueError(f"negative frame scale {scale:g}")
    db = (f * (FEATURE_DB_HIGH - FEATURE_DB_LOW) + (FEATURE_DB_HIGH + FEATURE_DB_LOW)) / 2.0
    power = np.power(10.0, db / 10.0) - POWER_FLOOR
    fixed = np.ceil(np.maximum(power, 0.0) * float(1 << (2 * SPECTRUM_BITS)))
    return code_min, fixed.astype(np.int64)


class IntegerHop:
    """The integer hop pipeline over a batch of hops (see the module docstring for every step)."""

    def __init__(self, tables: HopTables):
        self.tables = tables
        self._window = tables.window.astype(np.int64)
        self._fft = tables.fft_twiddles.astype(np.int64)
        self._split = tables.split_twiddles.astype(np.int64)
        self._order = bit_reversal(M)

    # ---- analysis ---------------------------------------------------------------------------
    def frames(self, samples: np.ndarray) -> np.ndarray:
        """[hops, N_FFT] (a read-only int16 view): hop ``k``'s analysis buffer (HOP zeros of history, then
        the samples, zero-padded to whole hops)."""
        samples = np.asarray(samples)
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise ValueError(f"expected 1-D int16 samples, got {samples.dtype} {samples.shape}")
        hops = -(-len(samples) // HOP)
        padded = np.zeros((hops + 1) * HOP, np.int16)
        padded[HOP:HOP + len(samples)] = samples
        return np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:hops]

    def spectra(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Real and imaginary parts (int64 [hops, N_BINS], Q20) of each frame's windowed real FFT."""
        windowed = _round_shift(frames.astype(np.int64) * self._window, ANALYSIS_SHIFT)
        zr, zi = self._complex_fft(windowed[:, 0::2], windowed[:, 1::2], inverse=False)
        k = np.arange(N_BINS)
        mirror = (M - k) % M
        a, b, c, d = zr[:, k % M], zi[:, k % M], zr[:, mirror], zi[:, mirror]
        even_r, even_i = a + c, b - d          # 2 Fe[k]
        odd_r, odd_i = b + d, c - a            # 2 Fo[k]
        wr, wi = self._split
        pr = _round_shift(wr * odd_r - wi * odd_i, TWIDDLE_BITS)
        pi = _round_shift(wr * odd_i + wi * odd_r, TWIDDLE_BITS)
        return _round_shift(even_r + pr, 1), _round_shift(even_i + pi, 1)

    def feature_codes(self, re: np.ndarray, im: np.ndarray) -> np.ndarray:
        """int8 [hops, N_BINS]: the model's input codes of each bin's power."""
        power = re * re + im * im
        count = np.searchsorted(self.tables.thresholds, power, side="right")
        return (self.tables.code_min + count).astype(np.int8)

    # ---- synthesis --------------------------------------------------------------------------
    def masked(self, re: np.ndarray, im: np.ndarray, mask_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The spectra times each bin's gain (Q20)."""
        gain = self.tables.gains.astype(np.int64)[np.asarray(mask_codes, np.int64) + 128]
        return _round_shift(re * gain, GAIN_BITS), _round_shift(im * gain, GAIN_BITS)

    def synthesis(self, re: np.ndarray, im: np.ndarray) -> np.ndarray:
        """int64 [hops, N_FFT]: each spectrum's inverse real FFT times the window, in Q15 samples."""
        k = np.arange(M)
        p, q, r, s = re[:, k], im[:, k], re[:, M - k], im[:, M - k]
        even_r, even_i = p + r, q - s          # 2 Fe[k]
        diff_r, diff_i = p - r, q + s          # Y[k] - conj(Y[M-k])
        wr, wi = self._split[:, :M]
        odd_r = _round_shift(wr * diff_r + wi * diff_i, TWIDDLE_BITS)   # 2 Fo[k] = diff * conj(W^k)
        odd_i = _round_shift(wr * diff_i - wi * diff_r, TWIDDLE_BITS)
        zr, zi = self._complex_fft(_round_shift(even_r - odd_i, 1), _round_shift(even_i + odd_r, 1), inverse=True)
        frame = np.empty((len(re), N_FFT), np.int64)
        frame[:, 0::2], frame[:, 1::2] = zr, zi
        return _round_shift(frame * self._window, SYNTHESIS_SHIFT)

    @staticmethod
    def overlap_add(frames: np.ndarray, tail: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """int16 [hops * HOP]: hop ``k`` completes samples ``[(k-1) * HOP, k * HOP)`` (int32 sums, saturated),
        ``tail`` being the second half of the frame before the first; and the last frame's second half."""
        out = frames[:, :HOP].copy()
        out[1:] += frames[:-1, HOP:]
        if tail is not None and len(out):
            out[0] += tail
        last = frames[-1, HOP:].copy() if len(frames) else tail
        return np.clip(out, -32768, 32767).astype(np.int16).reshape(-1), last

    # ---- the hop ----------------------------------------------------------------------------
    def process(self, samples: np.ndarray, network, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """The stream ``tvmse_process`` produces from ``samples`` (int16, zero-padded to whole hops): the
        output samples (delayed by ``STREAM_DELAY``) and the mask codes [hops, N_BINS].

        ``network(codes int8 [hops, N_BINS]) -> mask codes int8 [hops, N_BINS]`` runs the model over the
        hops in order with its state carried from zero. The spectra are computed ``chunk`` hops at a time
        (twice: for the features, then for the mask), so memory stays bounded on long recordings."""
        frames = self.frames(samples)
        spans = [(i, min(i + chunk, len(frames))) for i in range(0, len(frames), chunk)]
        codes = [self.feature_codes(*self.spectra(frames[a:b])) for a, b in spans]
        codes = np.concatenate(codes) if codes else np.zeros((0, N_BINS), np.int8)
        mask = np.asarray(network(codes), np.int8)
        if mask.shape != codes.shape:
            raise ValueError(f"the network returned masks of shape {mask.shape}, expected {codes.shape}")
        out, tail = [], None
        for a, b in spans:
            re, im = self.spectra(frames[a:b])
            samples_out, tail = self.overlap_add(self.synthesis(*self.masked(re, im, mask[a:b])), tail)
            out.append(samples_out)
        return (np.concatenate(out) if out else np.zeros(0, np.int16)), mask

    def _complex_fft(self, re: np.ndarray, im: np.ndarray, inverse: bool) -> tuple[np.ndarray, np.ndarray]:
        """Radix-2 DIT FFT of M points over the last axis; the inverse uses conjugate twiddles and halves
        after every stage (so it divides by M)."""
        re, im = re[:, self._order], im[:, self._order]
        half = 1
        while half < M:
            groups = M // (2 * half)
            wr = self._fft[0, ::groups][:half]
            wi = -self._fft[1, ::groups][:half] if inverse else self._fft[1, ::groups][:half]
            re, im = re.reshape(-1, groups, 2, half), im.reshape(-1, groups, 2, half)
            ar, ai, br, bi = re[:, :, 0], im[:, :, 0], re[:, :, 1], im[:, :, 1]
            tr = _round_shift(wr * br - wi * bi, TWIDDLE_BITS)
            ti = _round_shift(wr * bi + wi * br, TWIDDLE_BITS)
            if inverse:
                top = (_round_shift(ar + tr, 1), _round_shift(ai + ti, 1))
                bottom = (_round_shift(ar - tr, 1), _round_shift(ai - ti, 1))
            else:
                top, bottom = (ar + tr, ai + ti), (ar - tr, ai - ti)
            re = np.stack([top[0], bottom[0]], axis=2).reshape(-1, M)
            im = np.stack([top[1], bottom[1]], axis=2).reshape(-1, M)
            half *= 2
        return re, im


def for_graph(graph) -> tuple[IntegerHop, str, str]:
    """The integer hop of a compiled streaming model, with the names of its frame input and mask output.

    The model must take one int8 frame of ``N_BINS`` features (tvmse's feature map, ``framing.features``)
    and return one ``N_BINS``-bin mask besides its streaming state; anything else cannot be fed by the
    hop pipeline, which raises :class:`HopPipelineError` saying so."""
    from tvmse.targets.host.reference import streaming_state_pairs
    pairs = streaming_state_pairs(graph)
    tensors = graph.tensors()
    frames = [t.name for t in graph.inputs if t.name not in pairs]
    masks = [o for o in graph.outputs if o not in set(pairs.values())]
    sizes = {n: int(np.prod(tensors[n].shape)) for n in [*frames, *masks]}
    if len(frames) != 1 or len(masks) != 1 or sizes[frames[0]] != N_BINS or sizes[masks[0]] != N_BINS:
        raise HopPipelineError(
            f"the audio hop pipeline feeds a model one frame of {N_BINS} features and takes one {N_BINS}-bin mask "
            f"besides the streaming state; this model has inputs {', '.join(f'{n} ({sizes[n]})' for n in frames)} "
            f"and outputs {', '.join(f'{n} ({sizes[n]})' for n in masks)}. Use the network API (tvmse_step / "
            "tvmse_run) with your own feature code instead")
    frame, mask = tensors[frames[0]], tensors[masks[0]]
    tables = HopTables.for_model(frame.scale, frame.zero_point, mask.scale, mask.zero_point)
    return IntegerHop(tables), frame.name, mask.name


def graph_network(graph, reference, frame: str, mask: str, progress=None):
    """``network(codes) -> mask codes`` for :meth:`IntegerHop.process`: ``reference`` (a HostReference of
    ``graph``) stepped hop by hop with the state carried; ``progress`` optionally wraps the iteration."""
    shape = graph.tensors()[frame].shape

    def run(codes: np.ndarray) -> np.ndarray:
        outputs = reference.rollout(codes.reshape(len(codes), *shape), frame_input=frame)
        if progress is not None:
            outputs = progress(outputs, len(codes))
        return np.stack([np.asarray(out[mask], np.int8).reshape(-1) for out in outputs]) if len(codes) else \
            np.zeros((0, N_BINS), np.int8)

    return run


def float_pipeline(graph, reference, noisy: np.ndarray) -> np.ndarray:
    """The yardstick of the integer hop: the same compiled graph (``reference``, a HostReference) inside
    the float pipeline of ``tvmse.data.framing`` (float STFT and features, the features quantized to the
    model's input, the int8 mask dequantized and applied, float inverse STFT); float32 [len(noisy)]."""
    from tvmse.data.framing import apply_mask, features, istft, stft
    _, frame_name, mask_name = for_graph(graph)
    frame, mask = graph.tensors()[frame_name], graph.tensors()[mask_name]
    spectrum = stft(noisy)
    scaled = features(spectrum) / np.float32(frame.scale) + np.float32(frame.zero_point)
    codes = np.clip(np.round(scaled), -128, 127).astype(np.int8)
    masks = graph_network(graph, reference, frame_name, mask_name)(codes)
    gains = (masks.astype(np.float32) - mask.zero_point) * np.float32(mask.scale)
    return istft(apply_mask(spectrum, gains), len(noisy))
