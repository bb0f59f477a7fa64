"""Running bare-metal programs on the emulated Cortex-M55 and counting instructions."""
import pytest

HELLO = """
#include <stdio.h>
int main(void) { printf("hello from the cortex-m55\\n"); return 42; }
"""

SPIN = """
#include <stdint.h>
volatile uint32_t sink;
__attribute__((noinline)) void spin(uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        sink += i;
    }
}
int main(void) { spin(SPIN_N); return 0; }
"""

FAULT = """
int main(void) { __asm__ volatile("udf #0"); return 0; }
"""

HANG = """
int main(void) { for (;;) { __asm__ volatile(""); } }
"""


def test_hello_world_runs_and_returns_exit_code(qemu, write_c, tmp_path):
    elf = qemu.build_elf([write_c("hello.c", HELLO)], [], tmp_path, name="hello")
    result = qemu.run_elf(elf, timeout=30)
    assert result.exit_code == 42
    assert result.stdout == "hello from the cortex-m55\n"
    assert result.total_instructions > 0
    assert result.fault_ipsr is None
    assert 0 < result.stack_high_water_bytes < result.stack_size_bytes == qemu.DEFAULT_STACK_SIZE
    assert result.text_bytes > 0 and result.data_bytes >= 0 and result.bss_bytes > 0


def _spin_counts(qemu, write_c, tmp_path, n):
    src = write_c("spin.c", SPIN)
    elf = qemu.build_elf([src], [], tmp_path / f"n{n}", defines=[f"SPIN_N={n}"], name="spin")
    return qemu.run_elf(elf, timeout=30, count_functions=["spin", "main"])


def test_instruction_counts_are_deterministic(qemu, write_c, tmp_path):
    first = _spin_counts(qemu, write_c, tmp_path, 500)
    second = _spin_counts(qemu, write_c, tmp_path, 500)
    assert first.total_instructions == second.total_instructions
    assert first.per_function_instructions == second.per_function_instructions
    assert first.per_function_calls == {"spin": 1, "main": 1}


def test_instruction_counts_scale_with_loop_length(qemu, write_c, tmp_path):
    counts = {n: _spin_counts(qemu, write_c, tmp_path, n) for n in (100, 200, 400)}
    spin = {n: r.per_function_instructions["spin"] for n, r in counts.items()}
    step = spin[200] - spin[100]
    assert step > 100  # at least one instruction per iteration
    assert spin[400] - spin[200] == 2 * step  # exactly linear in the trip count
    # The whole program grows by exactly what the counted function grows by.
    assert counts[400].total_instructions - counts[200].total_instructions == 2 * step


def test_unexpected_exception_is_reported(qemu, write_c, tmp_path):
    elf = qemu.build_elf([write_c("fault.c", FAULT)], [], tmp_path, name="fault")
    result = qemu.run_elf(elf, timeout=30)
    assert result.exit_code == qemu.FAULT_EXIT_CODE
    assert result.fault_ipsr == 3  # UsageFault is disabled at reset: escalates to HardFault


def test_hanging_program_times_out(qemu, write_c, tmp_path):
    elf = qemu.build_elf([write_c("hang.c", HANG)], [], tmp_path, name="hang")
    with pytest.raises(qemu.QemuTimeoutError):
        qemu.run_elf(elf, timeout=1)


def test_unknown_function_is_refused(qemu, write_c, tmp_path):
    elf = qemu.build_elf([write_c("hello.c", HELLO)], [], tmp_path, name="hello")
    with pytest.raises(KeyError, match="no_such_function"):
        qemu.run_elf(elf, count_functions=["no_such_function"])


SRAM_AND_HEAP = """
#include <stdint.h>
#include <stdlib.h>
#include "tvmse_rt.h"
static uint8_t big[256 * 1024] __attribute__((section(".sram_bss")));
int main(void)
{
    uint8_t *heap = malloc(4096);
    if (heap == NULL) { return 2; }
    uint32_t sum = 0;
    for (uint32_t i = 0; i < sizeof(big); i++) { big[i] = (uint8_t)i; }
    for (uint32_t i = 0; i < sizeof(big); i++) { sum += big[i]; }
    heap[4095] = 7;
    tvmse_print_hex("where", &(uintptr_t[]){(uintptr_t)big, (uintptr_t)heap}, 8);
    return sum == 255u * 128u * 1024u ? heap[4095] : 1;
}
"""


def test_sram_buffers_and_heap_work(qemu, write_c, tmp_path):
    elf = qemu.build_elf([write_c("sram.c", SRAM_AND_HEAP)], [], tmp_path, name="sram")
    result = qemu.run_elf(elf, timeout=30)
    assert result.exit_code == 7, result.stdout + result.stderr
    big, heap = (int.from_bytes(result.arrays()["where"][i:i + 4], "little") for i in (0, 4))
    assert 0x11000000 <= big < heap < 0x11200000  # both in SRAM, heap after the buffers
    assert result.bss_bytes >= 256 * 1024
