"""The Ethos-U firmware glue: Vela's region tables and arena, and CPU-fallback ops bit-exact on the M55.

No NPU emulator exists here, so ``tvmse_npu_invoke`` is a test stub: it records its arguments and plays
the NPU, checking every input feature map of each call against the host reference and writing the
reference's output feature maps where Vela planned them. Everything else — the arena, the region
tables, the copies in and out, and the CPU ops — is the generated code, built with arm-none-eabi-gcc
and run on QEMU. Vela is told to leave ADD and TANH to the CPU (``--ignore-ops``), which splits the
small LSTM into several NPU subgraphs with CPU ops (two-kernel TANH lookups, int32 ADDs) between.
"""
import re

import numpy as np
import pytest
import tflite

from tvmse import frontend
from tvmse.ir import IntegerGraph
from tvmse.targets.cortex_m import npu_glue, qemu
from tvmse.targets.cortex_m.compile_cpu import random_frames
from tvmse.targets.ethosu import VelaConfig, lower_to_tflite
from tvmse.targets.ethosu.vela_driver import compile_tflite
from tvmse.targets.host import HostReference
from tvmse.testing import export_small_model

CPU_OPS = ("ADD", "TANH")
FRAMES = 6


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = export_small_model(tmp_path_factory.mktemp("npu") / "small.onnx", hidden=16, n_bins=24)
    graph = frontend.load(path)
    vela = compile_tflite(lower_to_tflite(graph), VelaConfig("ethos-u55-128"), "small", ignore_ops=CPU_OPS)
    return graph, vela.optimized_model, npu_glue.generate(graph, vela.optimized_model)


def _expected_regions(optimized: bytes):
    """Per ethos-u op, independently of tvmse: [(tensor name, size, arena offset or None)] as TFLM passes them."""
    model = tflite.Model.GetRootAsModel(optimized, 0)
    graph = model.Subgraphs(0)
    meta = [model.Metadata(i) for i in range(model.MetadataLength())]
    plan = next(m for m in meta if m.Name() == b"OfflineMemoryAllocation")
    offsets = model.Buffers(plan.Buffer()).DataAsNumpy().view(np.int32)[3:]
    calls = []
    for p in range(graph.OperatorsLength()):
        op = graph.Operators(p)
        if model.OperatorCodes(op.OpcodeIndex()).CustomCode() != b"ethos-u":
            continue
        regions = []
        for t in (list(op.InputsAsNumpy()[1:]) + list(op.OutputsAsNumpy()))[:8]:
            tensor = graph.Tensors(t)
            buf = model.Buffers(tensor.Buffer())
            size = buf.DataLength() or int(np.prod(tensor.ShapeAsNumpy()))
            regions.append((tensor.Name().decode(), size, None if offsets[t] < 0 else int(offsets[t])))
        calls.append((graph.Tensors(op.Inputs(0)).Name().decode(), regions))
    return calls


def test_region_tables_match_vela_and_cpu_ops_are_the_ignored_ones(compiled):
    graph, optimized, generated = compiled
    model_c = generated.files["tvmse_model.c"]
    expected = _expected_regions(optimized)
    assert len(expected) == len(generated.model.npu_calls) >= 2
    for k, (_, regions) in enumerate(expected):
        sizes = re.search(rf"tvmse_npu_sizes{k}\[\d+\] = {{([^}}]*)}}", model_c).group(1)
        assert [int(s) for s in sizes.split(",")] == [size for _, size, _ in regions]
        pointers = re.search(rf"tvmse_npu_regions{k}\[\d+\] = {{([^}}]*)}}", model_c).group(1).split(", ")
        assert pointers[0].startswith("tvmse_npu_ro")
        assert pointers[1:] == [f"tvmse_arena + {offset}" for _, _, offset in regions[1:]]
    assert {op.builtin for op in generated.model.cpu_ops} == set(CPU_OPS)
    assert {op.kind for op in generated.cpu_network.graph.ops} == {"add", "tanh"}
    assert generated.cpu_scratch_bytes > 0  # TANH lowers to two kernels with a temporary between
    assert "tvmse_npu_invoke(const void *cmd_stream, size_t cmd_size, uint64_t *base_addrs" in \
        generated.files["tvmse_npu.h"]


def _fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


_STUB = """\
/* Test stub of tvmse_npu_invoke: records the arguments of the first frame's calls and plays the NPU. */
#include <stdint.h>
#include <string.h>

#include "tvmse_npu.h"
#include "tvmse_rt.h"

extern const int32_t stub_script[];     /* records: kind (0 check, 1 write), arena offset, bytes, data index */
extern const int32_t stub_start[];      /* first record of each call, then the end */
extern const int8_t stub_data[];

uint32_t stub_log[NPU_CALLS][3 + 2 * TVMSE_NPU_MAX_REGIONS];
uint32_t stub_mismatches;
static uint32_t stub_calls;

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

int tvmse_npu_invoke(const void *cmd_stream, size_t cmd_size, uint64_t *base_addrs, const size_t *base_sizes,
                     int num_regions)
{
    uint32_t c = stub_calls++;
    if (c < NPU_CALLS) {
        uint32_t *log = stub_log[c];
        log[0] = fnv1a((const uint8_t *)cmd_stream, cmd_size);
        log[1] = (uint32_t)cmd_size;
        log[2] = (uint32_t)num_regions;
        for (int r = 0; r < num_regions; r++) {
            log[3 + 2 * r] = r == 0 ? fnv1a((const uint8_t *)(uintptr_t)base_addrs[0], base_sizes[0])
                                    : (uint32_t)(base_addrs[r] - base_addrs[1]);
            log[4 + 2 * r] = (uint32_t)base_sizes[r];
        }
    }
    uint8_t *arena = (uint8_t *)(uintptr_t)base_addrs[1];
    for (int32_t i = stub_start[c]; i < stub_start[c + 1]; i++) {
        const int32_t *rec = &stub_script[4 * i];
        if (rec[0] == 0) {
            stub_mismatches += memcmp(arena + rec[1], &stub_data[rec[3]], (size_t)rec[2]) != 0;
        } else {
            memcpy(arena + rec[1], &stub_data[rec[3]], (size_t)rec[2]);
        }
    }
    return 0;
}
"""

_MAIN = """\
#include <stdint.h>
#include <string.h>

#include "tvmse_model.h"
#include "tvmse_rt.h"

extern const int8_t harness_frames[];
extern uint32_t stub_log[NPU_CALLS][3 + 2 * 8];
extern uint32_t stub_mismatches;
static int8_t harness_out[FRAMES][TVMSE_MASK_SIZE + TVMSE_STATE_BYTES];
static tvmse_state_t state;

int main(void)
{
    tvmse_init(&state);
    for (int t = 0; t < FRAMES; t++) {
        if (tvmse_step(&harness_frames[t * TVMSE_FRAME_SIZE], harness_out[t], &state) != 0) {
            return 3;
        }
        memcpy(&harness_out[t][TVMSE_MASK_SIZE], &state, TVMSE_STATE_BYTES);
    }
    tvmse_print_hex("log", stub_log, sizeof(stub_log));
    tvmse_print_hex("mismatches", &stub_mismatches, sizeof(stub_mismatches));
    tvmse_print_hex("out", harness_out, sizeof(harness_out));
    return 0;
}
"""


def _reference_tensors(graph: IntegerGraph, frames: np.ndarray, iface):
    """Every tensor of the integer form per frame, state carried (the NPU's and the CPU's expected bytes)."""
    everything = IntegerGraph(inputs=graph.inputs, outputs=[op.name for op in graph.ops], ops=graph.ops)
    reference = HostReference(everything)
    state = {i: np.zeros(graph.tensors()[i].shape, np.int8) for i in iface.state}
    for frame in frames:
        inputs = {iface.frame: frame, **state}
        values = {**inputs, **reference.run(inputs)}
        state = {i: values[o] for i, o in iface.state.items()}
        yield values


def _stub_tables(generated, frames, graph) -> str:
    return _stub_tables_for_calls([(generated.model, c) for c in generated.model.npu_calls], generated.interface,
                                  frames, graph)


def _stub_tables_for_calls(calls, interface, frames, graph) -> str:
    """The stub's script: per NPU call of each frame, the input feature maps to check and the outputs to write."""
    script, starts, data = [], [], []
    for values in _reference_tensors(graph, frames, interface):
        for model, call in calls:
            starts.append(len(script) // 4)
            for kind, tensors in ((0, call.inputs), (1, call.outputs)):
                for t in tensors:
                    tensor = model.tensors[t]
                    script += [kind, tensor.offset, tensor.nbytes, len(data)]
                    data += [int(v) for v in values[tensor.name].reshape(-1)]
    starts.append(len(script) // 4)
    return "\n".join([qemu.c_array("stub_script", script, "int32_t"), qemu.c_array("stub_start", starts, "int32_t"),
                      qemu.c_array("stub_data", data)])


def _run_under_stub(files, calls, interface, graph, tmp_path):
    """Build the generated C with the recording NPU stub (arm-none-eabi-gcc), run FRAMES frames on QEMU."""
    src, work = tmp_path / "src", tmp_path / "work"
    src.mkdir(parents=True)
    work.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    frames = random_frames(tuple(graph.tensors()[interface.frame].shape), FRAMES, seed=3)
    defines = [f"NPU_CALLS={len(calls)}", f"FRAMES={FRAMES}"]
    (work / "stub.c").write_text(_STUB)
    (work / "main.c").write_text(_MAIN)
    (work / "tables.c").write_text("#include <stdint.h>\n\n" + _stub_tables_for_calls(calls, interface, frames, graph)
                                   + qemu.c_array("harness_frames", frames.reshape(-1)))
    sources = [src / n for n in files if n.endswith(".c")] + [work / "stub.c", work / "main.c", work / "tables.c"]
    elf = qemu.build_elf(sources, [src], work, compiler="gcc", opt="-O2", defines=defines, name="npu_glue",
                         extra_cflags=["-Wno-unused-variable", "-Wno-unused-but-set-variable"])
    result = qemu.run_elf(elf, timeout=120)
    assert result.exit_code == 0, result.stdout + result.stderr
    arrays = result.arrays()
    iface = interface
    expected = [np.concatenate([v[iface.mask].reshape(-1)] + [v[o].reshape(-1) for o in iface.state.values()])
                for v in _reference_tensors(graph, frames, iface)]
    return arrays, np.stack(expected).astype(np.int8)


def _check_call_log(log, calls):
    """Every NPU call got Vela's command stream, its read-only data (by content) and arena offsets."""
    for k, (model, call) in enumerate(calls):
        cms = model.tensors[call.command_stream].data
        assert list(log[k, :3]) == [_fnv1a(cms), len(cms), len(call.regions)]
        want = [_fnv1a(model.tensors[call.regions[0]].data), len(model.tensors[call.regions[0]].data)]
        for t in call.regions[1:]:
            want += [model.tensors[t].offset, model.tensors[t].nbytes]
        assert list(log[k, 3:3 + len(want)]) == want


def test_glue_links_with_gcc_and_runs_cpu_ops_bit_exact_under_a_recording_npu_stub(compiled, tmp_path):
    graph, optimized, generated = compiled
    calls = [(generated.model, c) for c in generated.model.npu_calls]
    arrays, expected = _run_under_stub(generated.files, calls, generated.interface, graph, tmp_path)
    _check_call_log(np.frombuffer(arrays["log"], np.uint32).reshape(len(calls), -1), calls)
    # the NPU's inputs (frame, state, CPU results) matched the host reference in every call
    assert int(np.frombuffer(arrays["mismatches"], np.uint32)[0]) == 0
    # and the step's outputs (mask, new state) equal the host reference's rollout
    got = np.frombuffer(arrays["out"], np.int8).reshape(FRAMES, -1)
    assert np.array_equal(got, expected)


def test_segmented_glue_copies_placed_weights_once_and_chains_segments_bit_exact(tmp_path):
    """A placement that splits the small LSTM into flash / SRAM / flash segments: the glue's region 0 of
    the SRAM segment is the copy made at tvmse_init (same bytes as Vela's blob), every segment's inputs
    arrive from the keep buffer or the caller, and the rollout equals the host reference."""
    from tvmse.targets.ethosu import build_segmented
    path = export_small_model(tmp_path / "small.onnx", hidden=16, n_bins=24)
    graph = frontend.load(path)
    build = build_segmented(graph, VelaConfig("ethos-u55-128"), {"lstm1/fc"}, HostReference(graph), 2)
    assert [s.segment.in_sram for s in build.segments] == [False, True, False]
    generated = npu_glue.generate_segmented(graph, build)
    model_c = generated.files["tvmse_model.c"]
    assert model_c.count("/* weights flash → SRAM, once */") == 1
    assert re.search(r"tvmse_npu_regions_s1_0\[\d+\] = \{tvmse_s1_ro0_sram,", model_c)
    assert generated.sram_weight_bytes == build.sram_weight_bytes > 0
    assert generated.keep_bytes == build.boundary_bytes > 0
    arrays, expected = _run_under_stub(generated.files, generated.npu_calls, generated.interface, graph,
                                       tmp_path / "run")
    _check_call_log(np.frombuffer(arrays["log"], np.uint32).reshape(len(generated.npu_calls), -1),
                    generated.npu_calls)
    assert int(np.frombuffer(arrays["mismatches"], np.uint32)[0]) == 0
    assert np.array_equal(np.frombuffer(arrays["out"], np.int8).reshape(FRAMES, -1), expected)


def test_cli_ethos_u55_writes_the_glue_for_an_all_npu_network(tmp_path):
    from tvmse.compile import main
    model = export_small_model(tmp_path / "small.onnx", hidden=16, n_bins=24)
    out = tmp_path / "out"
    assert main([str(model), "--target", "ethos-u55", "--output-dir", str(out), "-q"]) == 0
    src = out / "src"
    assert (src / "tvmse_npu.h").is_file() and (src / "tvmse_model.h").is_file()
    model_c = (src / "tvmse_model.c").read_text()
    assert model_c.count("tvmse_npu_run(tvmse_npu_cms") == 1 and "CPU:" not in model_c  # one NPU call, no CPU op
    assert not (src / "tvmse_kernels.c").exists()
