"""Cortex-M55 (Corstone-300) target: emulated runs and instruction profiles under QEMU.

``qemu`` builds bare-metal programs and runs them on QEMU's mps3-an547 machine,
counting executed instructions (not cycles); ``cmsis_dsp`` measures CMSIS-DSP's
Helium int8 matrix-vector kernel as a yardstick for generated code.
"""
