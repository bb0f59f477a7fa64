"""What an FC layer, or its tiled rewrite, costs on an Ethos-U55 (a model of Vela's estimates) or on
the Cortex-M55 (a model of QEMU's instruction counts of tvmse's own kernels).

Fitted to Vela 5.2 (``passes/arch.py`` holds every constant; TOOLCHAIN.md the measurements):

- an FC of N outputs and K inputs takes ``fixed + ⌈K/32⌉·(step·⌈N/16⌉ + small·min(⌈N/16⌉, 8))``
  NPU cycles: depth is charged in steps of 32, outputs in steps of 16, and each input step pays
  an overhead that large FCs amortise over more outputs (why FCs with ≤ 128 outputs are slower);
- a gathered input (a concatenation of r slices) is r NPU MemoryCopy ops of ``62 + 3·bytes``;
  a single slice is a read offset and free, and so is concatenating FC outputs;
- weights stream from flash in Shared_Sram at ~1 byte/cycle plus ~10 bytes per output channel,
  and an op costs max(NPU cycles, flash cycles); in Sram_Only the NPU cycles are the cost;
- Vela's weight codec spends ~1 byte per non-zero int8 weight and ~1/16 byte per zero in a zero
  block.

On the Cortex-M55 (``CPU_OBJECTIVE``; ``targets/cortex_m``, tile outputs written in place): an FC
kernel of N rows and K columns executes ``fixed + per_row·N + per_mac·N·K`` instructions (call and
argument unpacking; requantization and row-block loop per output; the Helium dot product), fitted on
the 94 FC shapes of the bundled models (``scripts/bench_cpu_kernels.py``, 4 rows per pass: median
error 2.5 %, at most 26 %); each input run a tile gathers is one slice kernel (``fixed + per byte``).

The passes use the model to rank candidate rewrites and Vela (``vela_probe``) to referee the
chosen one; ``tests/passes/test_cost_model.py`` checks the ranking against Vela.
"""

from __future__ import annotations

import math

import numpy as np

from tvmse.passes.arch import EthosUArch, FLASH_WEIGHT_MODES


#: The Cortex-M55 "memory mode" of the tiling pass: rank tilings by the CPU's instructions.
CPU_OBJECTIVE = "cortex-m55"
CPU_FC_FIXED, CPU_FC_PER_ROW, CPU_FC_PER_MAC = 50.0, 11.8, 0.17
CPU_SLICE_FIXED, CPU_SLICE_PER_BYTE = 40.0, 0.25


def cpu_fc_instructions(n: int, k: int) -> float:
    """Instructions of one Cortex-M55 FC kernel of ``n`` rows over ``k`` inputs (one call)."""
    return CPU_FC_FIXED + CPU_FC_PER_ROW * n + CPU_FC_PER_MAC * n * k


def cpu_gather_instructions(run_lengths: list[int], width: int) -> float:
    """Slice kernels that gather a tile's input runs (none when the tile reads the whole input)."""
    if run_lengths == [width]:
        return 0.0
    return sum(CPU_SLICE_FIXED + CPU_SLICE_PER_BYTE * n for n in run_lengths)


def encoded_weight_bytes(arch: EthosUArch, nonzero: int, zeros: int) -> float:
    return nonzero * arch.encoded_bytes_nonzero + zeros * arch.encoded_bytes_zero


def fc_npu_cycles(arch: EthosUArch, n: int, k: int) -> float:
    out_steps, in_steps = math.ceil(n / arch.fc_out_step), math.ceil(max(k, 1) / arch.fc_in_step)
    small_steps = min(out_steps, arch.fc_small_out // arch.fc_out_step)
    return arch.fc_fixed_cycles + in_steps * (arch.fc_step_cycles * out_steps + arch.fc_input_step_cycles * small_steps)


def fc_cycles(arch: EthosUArch, memory_mode: str, n: int, k: int, nonzero: int) -> float:
    """One FC op as Vela charges it in ``memory_mode``."""
    npu = fc_npu_cycles(arch, n, k)
    if memory_mode not in FLASH_WEIGHT_MODES:
        return npu
    flash = encoded_weight_bytes(arch, nonzero, n * k - nonzero) / arch.flash_bytes_per_cycle
    return max(npu, flash + arch.flash_bytes_per_out_channel * n / arch.flash_bytes_per_cycle)


def gather_cycles(arch: EthosUArch, run_lengths: list[int]) -> float:
    """Concatenating ``len(run_lengths)`` slices of an int8 vector into one FC input."""
    if len(run_lengths) <= 1:
        return 0.0
    return sum(arch.copy_fixed_cycles + arch.copy_cycles_per_byte * n for n in run_lengths)


def dense_layer_cycles(arch: EthosUArch, memory_mode: str, weight: np.ndarray) -> float:
    n, k = weight.shape
    return fc_cycles(arch, memory_mode, n, k, int(np.count_nonzero(weight)))


def floor_cycles(arch: EthosUArch, memory_mode: str, nonzero_macs: int, encoded_bytes: int) -> float:
    """The paper's floor for one layer: max(non-zero MACs / MACs per cycle, weight bytes / bandwidth)."""
    return max(nonzero_macs / arch.macs_per_cycle, encoded_bytes / arch.weight_bytes_per_cycle(memory_mode))


def layer_cycles(inputs_before, ops_before, outputs_before, inputs_after, ops_after, outputs_after,
                 config) -> dict:
    """Vela's cycles for a layer before and after a rewrite (both compiled on their own).

    Without a Vela config (unit tests, analysis only) nothing is compiled and an empty dict
    is returned: the report then has MACs but no cycles for the rewrite."""
    if config is None:
        return {}
    from tvmse.passes.vela_probe import vela_estimate
    before = vela_estimate(inputs_before, ops_before, outputs_before, config)
    after = vela_estimate(inputs_after, ops_after, outputs_after, config) if ops_after else None
    return {"cycles_before": before.total_cycles, "npu_cycles_before": before.npu_cycles,
            "cycles_after": after.total_cycles if after else 0, "npu_cycles_after": after.npu_cycles if after else 0,
            "cycles_source": f"Vela, layer on its own ({config.accelerator}, {config.memory_mode})"}
