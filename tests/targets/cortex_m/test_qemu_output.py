"""QEMU output is read completely whatever the machine's load, and a run that did not finish says so."""
import os
import subprocess
import sys

import numpy as np
import pytest

BIG = """
#include <stdint.h>
#include "tvmse_rt.h"
static uint8_t big[BIG_N] __attribute__((section(".sram_bss")));
int main(void)
{
    for (int i = 0; i < BIG_N; i++) big[i] = (uint8_t)(i * 7 + (i >> 8));
    tvmse_print_hex("out", big, sizeof(big));
    return 0;
}
"""

EARLY_EXIT = """
#include <stdio.h>
#include <stdint.h>
static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
int main(void)
{
    printf("@@out=00\\n");
    fflush(stdout);
    uint32_t exit_args[2] = {0x20026u, 0};   /* exit at once: no atexit handlers, no end markers */
    semihost(0x20, exit_args);
    return 0;
}
"""


def _expected(n: int) -> bytes:
    i = np.arange(n)
    return ((i * 7 + (i >> 8)) & 0xFF).astype(np.uint8).tobytes()


@pytest.fixture
def busy_cpus():
    """Two busy processes per core: the reader of QEMU's output is slow to be scheduled."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    yield
    for proc in burners:
        proc.kill()
        proc.wait()


def test_megabyte_of_output_arrives_whole_under_cpu_contention(qemu, write_c, tmp_path, busy_cpus):
    n = 400_000     # 800 kB of hex: over ten times a pipe's buffer
    elf = qemu.build_elf([write_c("big.c", BIG)], [], tmp_path, defines=[f"BIG_N={n}"], name="big")
    for _ in range(2):
        result = qemu.run_elf(elf, timeout=120)
        assert result.exit_code == 0
        assert result.arrays()["out"] == _expected(n)
        assert result.stack_size_bytes == qemu.DEFAULT_STACK_SIZE


def test_a_run_without_its_end_markers_is_reported_incomplete(qemu, write_c, tmp_path):
    elf = qemu.build_elf([write_c("early.c", EARLY_EXIT)], [], tmp_path, name="early")
    with pytest.raises(qemu.QemuIncompleteError, match="did not complete"):
        qemu.run_elf(elf, timeout=30)


def test_qemu_errors_are_tool_errors(qemu):
    """The command line reports them as ``tvmse: error:`` (exit 2), not as internal errors."""
    from tvmse.errors import ToolError
    assert issubclass(qemu.QemuIncompleteError, ToolError) and issubclass(qemu.QemuTimeoutError, ToolError)


@pytest.mark.slow
def test_compile_run_qemu_passes_three_times_under_load(small_onnx, tmp_path, busy_cpus):
    """The case that failed at random on a busy machine: ``--target cortex-m55 --run qemu``."""
    from tvmse.compile import main
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        assert main([str(small_onnx), "--target", "cortex-m55", "--run", "qemu", "--frames", "50",
                     "--output-dir", str(out), "-q"]) == 0
        assert (out / "report.json").is_file()
