"""Ethos-U55 figures the structural passes and their cost model depend on, in one place.

Every number is either a hardware parameter (MACs per cycle, bus widths from Vela's ``vela.ini``)
or a fit to Vela 5.2's performance model measured on this toolchain (TOOLCHAIN.md, "Block tiling
measured" and "What Vela charges"; re-fitted with ``passes/vela_probe.py``). Passes never write
these numbers as literals: they take an :class:`EthosUArch` and read it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Memory modes whose constant area (weights) sits behind the off-chip flash port.
FLASH_WEIGHT_MODES = ("Shared_Sram",)


@dataclass(frozen=True)
class EthosUArch:
    """One accelerator + system config as the cost model sees it."""

    accelerator: str = "ethos-u55-128"
    macs_per_cycle: int = 128            # int8 MACs per NPU cycle (ethos-u55-128)
    fc_out_step: int = 16                # FC output channels per step
    fc_in_step: int = 32                 # FC input depth per step
    fc_step_cycles: float = 66.0         # cycles per (16 outputs × 32 inputs) step
    fc_input_step_cycles: float = 14.0   # overhead per input step and output step, for the first …
    fc_small_out: int = 128              # … this many outputs (why FCs with ≤ 128 outputs are slower)
    fc_fixed_cycles: float = 75.0        # fixed cost of an FC op
    copy_fixed_cycles: float = 62.0      # one gathered input run (NPU MemoryCopy): fixed part
    copy_cycles_per_byte: float = 3.0    # … and per byte
    flash_bytes_per_cycle: float = 1.0   # off-chip flash read bandwidth seen by an op (Shared_Sram)
    sram_bytes_per_cycle: float = 8.0    # SRAM (AXI0, 64-bit) read bandwidth
    flash_bytes_per_out_channel: float = 10.0   # scale/bias stream per output channel
    encoded_bytes_nonzero: float = 1.0   # encoded weight bytes per non-zero int8 weight (Vela codec)
    encoded_bytes_zero: float = 15.0 / 256.0    # … per zero weight inside a zero 16×16 block
    row_block: int = 16                  # tiling granule over outputs (= fc_out_step)
    col_granules: tuple[int, ...] = (16, 32)    # tiling granules tried over inputs

    def weight_bytes_per_cycle(self, memory_mode: str) -> float:
        """Bandwidth at which an op streams its encoded weights in ``memory_mode``."""
        return self.flash_bytes_per_cycle if memory_mode in FLASH_WEIGHT_MODES else self.sram_bytes_per_cycle


U55_128 = EthosUArch()
ARCHS = {U55_128.accelerator: U55_128}


def arch_for(accelerator: str) -> EthosUArch:
    """The cost figures of ``accelerator``; ethos-u55-128's (scaled by MACs) for other U55 sizes."""
    if accelerator in ARCHS:
        return ARCHS[accelerator]
    if accelerator.startswith("ethos-u55-"):
        macs = int(accelerator.rsplit("-", 1)[1])
        scale = U55_128.macs_per_cycle / macs
        return EthosUArch(accelerator=accelerator, macs_per_cycle=macs, fc_step_cycles=U55_128.fc_step_cycles * scale,
                          fc_input_step_cycles=U55_128.fc_input_step_cycles * scale)
    return U55_128
