"""int8 mat-vec kernels on the emulated Cortex-M55 agree with numpy."""
import numpy as np
import pytest


def test_reference_semantics(cmsis_dsp):
    mat = np.array([[127, 127], [-128, -128], [1, -1]], dtype=np.int8)
    vec = np.array([127, 127], dtype=np.int8)
    # 32258 >> 7 = 252 -> 127; -32512 >> 7 = -254 -> -128; 0 -> 0
    assert cmsis_dsp.mat_vec_q7_reference(mat, vec).tolist() == [127, -128, 0]
    # Arithmetic shift rounds towards minus infinity: -1 >> 7 == -1.
    assert cmsis_dsp.mat_vec_q7_reference(np.array([[-1]], np.int8),
                                          np.array([1], np.int8)).tolist() == [-1]


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_plain_c_mat_vec_matches_numpy(cmsis_dsp, compiler):
    # Odd shape: exercises the vectorised loop's tail handling.
    m = cmsis_dsp.measure_mat_vec_q7("mat_vec_q7_plain", 37, 53, compiler=compiler, seed=1)
    assert m.run.per_function_calls["mat_vec_q7_plain"] == 1
    assert m.instructions_per_call > 37 * 53 / 16  # no fewer than one 16-lane step per 16 MACs


def test_cmsis_dsp_helium_mat_vec_256x256(cmsis_dsp):
    m = cmsis_dsp.measure_cmsis_mat_vec_q7(256, 256)  # raises if it differs from numpy
    assert m.run.per_function_calls["arm_mat_vec_mult_q7"] == 1
    # Helium: 16 int8 MACs per vmladava, so far below one instruction per MAC.
    assert m.instructions_per_mac < 0.5
    assert m.instructions_per_call == m.run.per_function_instructions["arm_mat_vec_mult_q7"]
