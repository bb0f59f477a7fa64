"""CMSIS-DSP yardstick: instructions per MAC of Arm's Helium int8 mat-vec kernel.

Generated kernels for the Cortex-M55 are judged against the hand-written Helium
(MVE) path of CMSIS-DSP's ``arm_mat_vec_mult_q7`` and against a plain C loop
(``kernels/mat_vec_q7_plain.c``) left to the compiler. CMSIS-DSP's C sources
are taken at run time from the ``cmsisdsp`` sdist on PyPI and cached; none of
them is part of this repository. CMSIS-Core, which the DSP headers include, is
replaced by the small ``kernels/cmsis_shim/cmsis_compiler.h``.

All figures are executed instructions counted by QEMU (no cycle model).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from . import qemu

log = logging.getLogger(__name__)

CMSIS_DSP_VERSION = "1.10.3"
#: sha256 of cmsisdsp-1.10.3.tar.gz on PyPI, checked after every download.
CMSIS_DSP_SDIST_SHA256 = "307d32298faa7c58db912851027fce35f886fec7eb1a27c4b309ce1a97f47519"
#: Parts of the sdist that are kept: the headers and the one kernel measured.
_KEPT_PREFIXES = ("Include/", "PrivateInclude/", "LICENSE",
                  "Source/MatrixFunctions/arm_mat_vec_mult_q7.c")
KERNELS_DIR = Path(__file__).resolve().parent / "kernels"
CMSIS_SHIM_DIR = KERNELS_DIR / "cmsis_shim"
#: Selects CMSIS-DSP's Helium code paths (implies ARM_MATH_MVEI for integers).
HELIUM_DEFINES = ("ARM_MATH_HELIUM",)


class YardstickMismatchError(AssertionError):
    """A measured kernel's output differs from the numpy reference."""


@dataclasses.dataclass(frozen=True)
class MatVecMeasurement:
    """Executed instructions of one int8 mat-vec kernel call (not cycles).

    ``instructions_per_call`` counts the kernel function's own instructions
    (it calls nothing); ``instructions_per_mac`` divides that by rows * cols.
    """

    kernel: str
    rows: int
    cols: int
    compiler: str
    opt: str
    instructions_per_call: float
    instructions_per_mac: float
    run: qemu.RunResult


# ------------------------------------------------------------------ the sources


def _download_sdist(dest: Path) -> Path:
    """Fetch the cmsisdsp sdist with pip (no build, no dependencies)."""
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "cmsisdsp",
            f"cmsisdsp=={CMSIS_DSP_VERSION}", "-d", str(dest), "-q"]
    # Preparing the sdist's metadata in the current environment is much faster
    # than in an isolated one; fall back to isolation if that environment lacks
    # what cmsisdsp's setup.py needs.
    for cmd in (base + ["--no-build-isolation"], base):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sdist = dest / f"cmsisdsp-{CMSIS_DSP_VERSION}.tar.gz"
        if proc.returncode == 0 and sdist.is_file():
            return sdist
        log.info("pip download %s failed, retrying:\n%s", " ".join(cmd[3:]), proc.stderr)
    raise RuntimeError(f"could not download cmsisdsp=={CMSIS_DSP_VERSION} from PyPI:\n"
                       f"{proc.stderr}")


def _check_sha256(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != CMSIS_DSP_SDIST_SHA256:
        raise RuntimeError(f"{path.name} has sha256 {digest}, expected {CMSIS_DSP_SDIST_SHA256}")


def _extract_kept(sdist: Path, dest: Path) -> None:
    """Unpack only the headers, the measured kernel and the licence."""
    top = f"cmsisdsp-{CMSIS_DSP_VERSION}/"
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            rel = member.name[len(top):] if member.name.startswith(top) else None
            if rel and member.isfile() and rel.startswith(_KEPT_PREFIXES):
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())


def cmsis_dsp_sources() -> Path:
    """Directory with CMSIS-DSP's ``Include``, ``PrivateInclude`` and kernel source.

    Downloaded once (a 2 MB sdist) into ``<cache>/cmsis-dsp/`` and reused.
    """
    root = qemu.cache_dir() / "cmsis-dsp" / f"cmsisdsp-{CMSIS_DSP_VERSION}"
    if (root / ".complete").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        sdist = _download_sdist(Path(tmp) / "download")
        _check_sha256(sdist)
        staged = Path(tmp) / "tree"
        _extract_kept(sdist, staged)
        (staged / ".complete").write_text(f"cmsisdsp {CMSIS_DSP_VERSION}\n")
        try:
            os.replace(staged, root)
        except OSError:  # another process finished first
            if not (root / ".complete").is_file():
                shutil.rmtree(root, ignore_errors=True)
                os.replace(staged, root)
    log.info("CMSIS-DSP %s sources in %s", CMSIS_DSP_VERSION, root)
    return root


# -------------------------------------------------------------- the measurement


def mat_vec_q7_reference(mat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """CMSIS-DSP q7 mat-vec semantics: int32 sums, ``>> 7``, saturate to int8."""
    acc = mat.astype(np.int32) @ vec.astype(np.int32)
    return np.clip(acc >> 7, -128, 127).astype(np.int8)


def random_q7_problem(rows: int, cols: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reproducible int8 matrix and vector covering the full int8 range."""
    rng = np.random.default_rng(seed)
    mat = rng.integers(-128, 128, size=(rows, cols), dtype=np.int8)
    vec = rng.integers(-128, 128, size=cols, dtype=np.int8)
    return mat, vec


_MAIN_TEMPLATE = """\
#include <stdint.h>
#include "tvmse_rt.h"
{include}

extern const int8_t tvmse_mat[{rows} * {cols}];
extern const int8_t tvmse_vec[{cols}];
static int8_t tvmse_out[{rows}] __attribute__((aligned(16)));

int main(void)
{{
    {call}
    tvmse_print_hex("out", tvmse_out, sizeof(tvmse_out));
    return 0;
}}
"""

_KERNEL_CALLS = {
    "arm_mat_vec_mult_q7": (
        '#include "dsp/matrix_functions.h"',
        "arm_matrix_instance_q7 m = {{{rows}, {cols}, (q7_t *)tvmse_mat}};\n"
        "    arm_mat_vec_mult_q7(&m, tvmse_vec, tvmse_out);",
    ),
    "mat_vec_q7_plain": (
        '#include "mat_vec_q7_plain.h"',
        "mat_vec_q7_plain(tvmse_mat, tvmse_vec, tvmse_out, {rows}, {cols});",
    ),
}


def _write_harness(work: Path, kernel: str, mat: np.ndarray, vec: np.ndarray) -> list[Path]:
    """Write main.c (one kernel call, output printed as hex) and the baked-in data."""
    rows, cols = mat.shape
    include, call = _KERNEL_CALLS[kernel]
    main_c = work / "main.c"
    main_c.write_text(_MAIN_TEMPLATE.format(include=include, rows=rows, cols=cols,
                                            call=call.format(rows=rows, cols=cols)))
    data_c = work / "data.c"
    data_c.write_text("#include <stdint.h>\n\n"
                      # large matrices do not fit the ITCM: DDR stands in for flash
                      + qemu.c_array("tvmse_mat", mat.ravel(), section=".flash_rodata" if mat.size > 65536 else None)
                      + qemu.c_array("tvmse_vec", vec))
    return [main_c, data_c]


def _check_output(result: qemu.RunResult, expected: np.ndarray, kernel: str) -> None:
    """Raise YardstickMismatchError unless the run succeeded and matches numpy."""
    if result.exit_code != 0 or "out" not in result.arrays():
        raise YardstickMismatchError(
            f"{kernel} run failed (exit {result.exit_code}):\n{result.stdout}{result.stderr}")
    got = np.frombuffer(result.arrays()["out"], dtype=np.int8)
    if got.shape != expected.shape or not np.array_equal(got, expected):
        bad = np.flatnonzero(got != expected) if got.shape == expected.shape else [0]
        raise YardstickMismatchError(
            f"{kernel} output differs from numpy at {len(bad)} of {expected.size} rows "
            f"(first: row {bad[0]})")


def measure_mat_vec_q7(kernel: str, rows: int = 256, cols: int = 256, *, seed: int = 0,
                       compiler: str = "gcc", opt: str = "-O2",
                       work_dir: str | Path | None = None,
                       timeout: float = 60.0) -> MatVecMeasurement:
    """Build, run and verify one int8 mat-vec kernel call; count its instructions.

    ``kernel`` is ``"arm_mat_vec_mult_q7"`` (CMSIS-DSP, Helium path) or
    ``"mat_vec_q7_plain"`` (plain C). The output is checked against
    ``mat_vec_q7_reference``; a mismatch raises ``YardstickMismatchError``.
    """
    if kernel not in _KERNEL_CALLS:
        raise ValueError(f"kernel must be one of {sorted(_KERNEL_CALLS)}, not {kernel!r}")
    mat, vec = random_q7_problem(rows, cols, seed)
    if kernel == "arm_mat_vec_mult_q7":
        cmsis = cmsis_dsp_sources()
        sources = [cmsis / "Source/MatrixFunctions/arm_mat_vec_mult_q7.c"]
        include_dirs = [CMSIS_SHIM_DIR, cmsis / "Include", cmsis / "PrivateInclude"]
        defines = HELIUM_DEFINES
    else:
        sources = [KERNELS_DIR / "mat_vec_q7_plain.c"]
        include_dirs = [KERNELS_DIR]
        defines = ()

    with tempfile.TemporaryDirectory(prefix="tvmse-matvec-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        harness = _write_harness(work, kernel, mat, vec)
        elf = qemu.build_elf([*sources, *harness], include_dirs, work, compiler, opt,
                             defines=defines, name=kernel)
        result = qemu.run_elf(elf, timeout=timeout, count_functions=[kernel])

    _check_output(result, mat_vec_q7_reference(mat, vec), kernel)
    per_call = result.instructions_per_call(kernel)
    measurement = MatVecMeasurement(kernel=kernel, rows=rows, cols=cols, compiler=compiler,
                                    opt=opt, instructions_per_call=per_call,
                                    instructions_per_mac=per_call / (rows * cols), run=result)
    log.info("%s %dx%d (%s %s): %.0f instructions/call, %.3f per MAC", kernel, rows, cols,
             compiler, opt, per_call, measurement.instructions_per_mac)
    return measurement


def measure_cmsis_mat_vec_q7(rows: int = 256, cols: int = 256, **kwargs) -> MatVecMeasurement:
    """The CMSIS-DSP Helium yardstick: ``arm_mat_vec_mult_q7`` for a rows x cols matrix."""
    return measure_mat_vec_q7("arm_mat_vec_mult_q7", rows, cols, **kwargs)
