"""C glue for ``--target ethos-u55``: NPU command streams through one call, CPU-fallback ops on the M55.

Vela's optimised model is a sequence of ``ethos-u`` custom operators (one NPU subgraph each) and
the operators it left for the CPU, over one offline-planned arena (``targets.ethosu.vela_model``).
This module writes the firmware that runs that sequence without TensorFlow Lite Micro:

    tvmse_npu.h        the one call the user implements: tvmse_npu_invoke(...), 1:1 onto Arm's
                       ethos-u core driver's ethosu_invoke_v3 (example in the header)
    tvmse_npu_data.c   each command stream and each read-only blob (encoded weights, scales),
                       16-byte aligned as the NPU's DMA requires; ≥ 4 KiB in section .flash_rodata
    tvmse_model.h/.c   the same API as the Cortex-M55 build (tvmse_init, tvmse_step); one arena laid
                       out exactly as Vela planned it, the region table of every NPU call, the CPU
                       kernels' call sequence
    tvmse_kernels*.c, tvmse_weights.c, tvmse_tvm_abi.h
                       the CPU-fallback ops, compiled from the integer form by this package
                       (``lower``), only when Vela left any

Region table of an NPU call (as TFLM's ``ethosu.cc`` builds it): the custom op's inputs after the
command stream, then its outputs, at most 8 — region 0 the read-only data, 1 the scratch (the arena
base: Vela addresses feature maps inside it), 2 the fast scratch, then the activations. Every
address is the tensor's place in the arena (arena base + Vela's offline offset).

A CPU-fallback op is the integer op whose result has the TFLite tensor's name (``lower_to_tflite``
names every tensor after its op); its kernels read and write the arena at Vela's offsets, and the
temporaries between the kernels of one op live in a second, small planned buffer.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from tvmse.ir import IntegerGraph, TensorInfo
from tvmse.ir.graph import relax_name
from tvmse.targets.cortex_m import glue, lower, memory_plan
from tvmse.targets.cortex_m.kernels_c import ABI_HEADER, ABI_HEADER_NAME, build_c, kernel_symbol
from tvmse.targets.ethosu import vela_model
from tvmse.targets.ethosu.vela_model import NpuCall, VelaModel, VelaModelError

log = logging.getLogger(__name__)

#: TFLite builtin → integer-form kind, for the ops Vela may leave on the CPU.
BUILTIN_KINDS = {"ADD": "add", "MUL": "mul", "LOGISTIC": "logistic", "TANH": "tanh",
                 "FULLY_CONNECTED": "fully_connected", "CONCATENATION": "concat", "STRIDED_SLICE": "slice"}
NPU_HEADER = "tvmse_npu.h"
NPU_DATA = "tvmse_npu_data.c"

NPU_HEADER_TEXT = """\
/*
 * The one NPU call of a tvmse Ethos-U build. tvmse_step() calls it once per NPU subgraph
 * (TVMSE_NUM_NPU_CALLS per frame); the application provides it, normally on top of Arm's
 * ethos-u core driver (ethos-u-core-driver, not part of this output):
 *
 *   #include <ethosu_driver.h>
 *   int tvmse_npu_invoke(const void *cmd_stream, size_t cmd_size, uint64_t *base_addrs,
 *                        const size_t *base_sizes, int num_regions)
 *   {
 *       struct ethosu_driver *drv = ethosu_reserve_driver();
 *       int rc = ethosu_invoke_v3(drv, cmd_stream, (int)cmd_size, base_addrs, base_sizes,
 *                                 num_regions, NULL);
 *       ethosu_release_driver(drv);
 *       return rc;
 *   }
 *
 * after ethosu_init() at start-up. Arguments (what TFLite Micro's Ethos-U kernel passes):
 *   cmd_stream   Vela's command stream for this subgraph (driver header included), 16-byte aligned
 *   cmd_size     its size in bytes
 *   base_addrs   region r's address: r = 0 read-only data (encoded weights, in flash),
 *                1 scratch (= the arena base; the NPU addresses its inputs, outputs and
 *                intermediates inside it), 2 fast scratch, 3.. the subgraph's inputs and outputs
 *   base_sizes   region r's size in bytes
 *   num_regions  number of regions (at most 8)
 * Return 0 on success; any other value makes tvmse_step() return -(index of the operator + 1).
 * With a data cache, the driver's cache hooks (ethosu_flush_dcache / ethosu_invalidate_dcache)
 * must keep the arena coherent, as for TFLite Micro.
 */
#ifndef TVMSE_NPU_H
#define TVMSE_NPU_H

#include <stddef.h>
#include <stdint.h>

#define TVMSE_NPU_MAX_REGIONS 8

int tvmse_npu_invoke(const void *cmd_stream, size_t cmd_size, uint64_t *base_addrs,
                     const size_t *base_sizes, int num_regions);

#endif /* TVMSE_NPU_H */
"""


# C helpers shared by the single and the segmented glue, then tvmse_init up to its closing brace
# (the segmented glue adds the one-time weight copies there)
_HELPERS_AND_INIT = [
    "static void tvmse_copy(int8_t *dst, const int8_t *src, size_t n)", "{",
    "    for (size_t i = 0; i < n; i++) {", "        dst[i] = src[i];", "    }", "}", "",
    "static int tvmse_npu_run(const uint8_t *cms, size_t cms_size, const uint8_t *const *regions,",
    "                         const size_t *sizes, int n)", "{",
    "    uint64_t base[TVMSE_NPU_MAX_REGIONS];",
    "    for (int i = 0; i < n; i++) {", "        base[i] = (uint64_t)(uintptr_t)regions[i];", "    }",
    "    return tvmse_npu_invoke(cms, cms_size, base, sizes, n);", "}", "",
    "void tvmse_init(tvmse_state_t *state)", "{", "    int8_t *bytes = (int8_t *)state;",
    "    for (size_t i = 0; i < sizeof(*state); i++) {", "        bytes[i] = 0;", "    }"]


@dataclasses.dataclass
class NpuGlue:
    files: dict[str, str]
    model: VelaModel
    interface: glue.Interface
    cpu_network: lower.LoweredNetwork | None  # the CPU-fallback ops, None if Vela left none
    kernel_functions: list[str]  # C function of each CPU kernel call, in order
    arena_bytes: int
    cpu_scratch_bytes: int
    state_bytes: int
    fc_sources: tuple[str, ...] = (glue.FC_SOURCE,)


def cpu_graph(graph: IntegerGraph, model: VelaModel) -> IntegerGraph | None:
    """The integer ops Vela left on the CPU, as a graph of their own (inputs: what they read)."""
    ops = []
    for cpu in model.cpu_ops:
        name = model.tensors[cpu.outputs[0]].name
        op = graph.producer(name)
        if op is None or BUILTIN_KINDS.get(cpu.builtin) != op.kind:
            raise VelaModelError(f"CPU operator {cpu.builtin} writing '{name}' (operator {cpu.position} of the "
                                 f"optimised model) matches no {BUILTIN_KINDS.get(cpu.builtin, '?')} op of the "
                                 "integer form")
        ops.append(op)
    if not ops:
        return None
    produced = {op.name for op in ops}
    tensors = graph.tensors()
    inputs: list[TensorInfo] = []
    for op in ops:
        inputs += [tensors[i] for i in op.inputs if i not in produced and tensors[i] not in inputs]
    return IntegerGraph(inputs=inputs, outputs=[op.name for op in ops], ops=ops)


def _blob(symbol: str, data: bytes, comment: str) -> str:
    where = ' __attribute__((section(".flash_rodata")))' if len(data) >= glue.FLASH_MIN_BYTES else ""
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16)]
    body = ",\n    ".join(rows)
    return (f"/* {comment} */\nconst uint8_t {symbol}[{max(1, len(data))}] __attribute__((aligned(16))){where} = {{\n"
            f"    {body}\n}};\n")


def _npu_data_c(model: VelaModel) -> tuple[str, dict[int, str]]:
    """Command streams and read-only blobs; tensor index → C symbol."""
    out = ["/* Ethos-U command streams and read-only data (from Vela's optimised model). Generated by tvmse. */",
           "#include <stdint.h>", ""]
    symbols: dict[int, str] = {}
    for k, call in enumerate(model.npu_calls):
        symbols[call.command_stream] = f"tvmse_npu_cms{k}"
        t = model.tensors[call.command_stream]
        out.append(_blob(symbols[call.command_stream], t.data, f"command stream of NPU call {k} ('{t.name}')"))
        ro = call.regions[0]
        if ro not in symbols:  # Vela shares one read-only tensor between calls when it can
            symbols[ro] = f"tvmse_npu_ro{sum(s.startswith('tvmse_npu_ro') for s in symbols.values())}"
            out.append(_blob(symbols[ro], model.tensors[ro].data,
                             f"region 0 (read-only: encoded weights, scales) '{model.tensors[ro].name}'"))
    return "\n".join(out), symbols


def _header(model: VelaModel, interface: glue.Interface, arena: int) -> str:
    sizes = {n: model.by_name(n).nbytes for n in [interface.frame, interface.mask, *interface.state]}
    return glue.model_header(
        "Streaming step of an int8 network compiled by tvmse for the Cortex-M55 + Ethos-U (Vela).",
        " * The NPU subgraphs run through tvmse_npu_invoke() (tvmse_npu.h, provided by the application);\n"
        " * operators Vela left on the CPU run as C kernels. No heap; one static arena of TVMSE_ARENA_BYTES\n"
        " * laid out as Vela planned it. Not re-entrant. Returns 0, or -(k+1) if operator k failed.",
        interface, sizes, arena,
        {"TVMSE_NUM_NPU_CALLS": len(model.npu_calls), "TVMSE_NUM_CPU_OPS": len(model.cpu_ops)})


class _ModelWriter:
    def __init__(self, graph: IntegerGraph, model: VelaModel, interface: glue.Interface,
                 network: lower.LoweredNetwork | None, data_symbols: dict[int, str]):
        self.graph, self.model, self.interface, self.network = graph, model, interface, network
        self.data_symbols = data_symbols
        self.scratch = memory_plan.plan(self._temporaries())

    def _temporaries(self) -> dict[str, tuple[int, int, int]]:
        """Kernel outputs that are not tensors of Vela's model: lifetimes for the CPU scratch."""
        if self.network is None:
            return {}
        names = {t.name for t in self.model.tensors}
        first, last = {}, {}
        for i, step in enumerate(self.network.steps):
            for a in step.args[:-1]:
                last[a] = i
            first.setdefault(step.args[-1], i)
            last.setdefault(step.args[-1], i)
        return {n: (self.network.tensors[n].nbytes, first[n], last[n]) for n in first
                if n not in names and self.network.tensors[n].kind == "arena"}

    def arena_ptr(self, name: str) -> str:
        return f"(tvmse_arena + {self.model.by_name(name).offset})"

    def data_of(self, name: str) -> str:
        if name in self.scratch.placements:
            return f"(void *)(tvmse_cpu_scratch + {self.scratch.placements[name].offset})"
        return f"(void *){self.arena_ptr(name)}"

    def write(self) -> tuple[str, list[str]]:
        model = self.model
        out = ["/* Glue generated by tvmse: Vela's arena, the NPU calls' region tables, CPU-fallback kernels. */",
               "#include <stddef.h>", "#include <stdint.h>", "", '#include "tvmse_model.h"',
               f'#include "{NPU_HEADER}"']
        if self.network is not None:
            out.append(f'#include "{ABI_HEADER_NAME}"')
        out.append("")
        out += [f"extern const uint8_t {s}[];" for s in self.data_symbols.values()]
        arena = max(model.arena_bytes, 16)
        out += ["", "/* Vela's arena: every tensor at its offline-planned offset; region 1 (scratch) is its base */",
                f"static uint8_t tvmse_arena[{arena}] __attribute__((aligned(16)));"]
        kernels: list[str] = []
        if self.network is not None:
            out.append(f"static uint8_t tvmse_cpu_scratch[{max(self.scratch.arena_bytes, 16)}] "
                       "__attribute__((aligned(16)));")
            for name, t in self.network.tensors.items():
                if t.kind == "const":
                    out.append(f"extern const {glue.C_TYPES[t.dtype]} {name}[{max(1, t.value.size)}];")
            for step in self.network.steps:
                out.append(f"int32_t {kernel_symbol(step.kernel)}(void *self, void *args, int32_t num_args, "
                           "void *result);")
            out.append("")
            lines, _, _ = glue.kernel_tables(self.network, self.data_of)
            out += lines
        out.append("")
        for k, call in enumerate(model.npu_calls):
            out += self._region_table(k, call)
        out += self._functions(kernels)
        return "\n".join(out), kernels

    def _region_table(self, k: int, call: NpuCall) -> list[str]:
        model, ptrs, sizes = self.model, [], []
        for r, t in enumerate(call.regions):
            tensor = model.tensors[t]
            ptrs.append(self.data_symbols[t] if r == 0 else f"tvmse_arena + {tensor.offset}")
            sizes.append(str(len(tensor.data) if r == 0 else tensor.nbytes))
        names = ", ".join(model.tensors[t].name for t in call.regions)
        return [f"/* NPU call {k} (operator {call.position}); regions: {names} */",
                f"static const uint8_t *const tvmse_npu_regions{k}[{len(ptrs)}] = {{{', '.join(ptrs)}}};",
                f"static const size_t tvmse_npu_sizes{k}[{len(sizes)}] = {{{', '.join(sizes)}}};", ""]

    def _functions(self, kernels: list[str]) -> list[str]:
        model, iface = self.model, self.interface
        state = {i: relax_name(i) for i in iface.state}
        out = _HELPERS_AND_INIT + ["}", "", "int tvmse_step(const int8_t *frame, int8_t *mask, tvmse_state_t *state)",
                                   "{", f"    tvmse_copy((int8_t *){self.arena_ptr(iface.frame)}, frame, TVMSE_FRAME_SIZE);"]
        for i, field in state.items():
            out.append(f"    tvmse_copy((int8_t *){self.arena_ptr(i)}, state->{field}, sizeof(state->{field}));")
        steps = list(self.network.steps) if self.network is not None else []
        npu_index = 0
        for op in model.operators:
            if isinstance(op, NpuCall):
                cms = model.tensors[op.command_stream]
                out.append(f"    if (tvmse_npu_run({self.data_symbols[op.command_stream]}, {len(cms.data)}, "
                           f"tvmse_npu_regions{npu_index}, tvmse_npu_sizes{npu_index}, {len(op.regions)}) != 0) "
                           f"return -{op.position + 1};  /* NPU call {npu_index} */")
                npu_index += 1
                continue
            name = model.tensors[op.outputs[0]].name
            while steps and steps[0].op == name:
                step = steps.pop(0)
                index = self.network.steps.index(step)
                kernels.append(kernel_symbol(step.kernel))
                out.append(f"    if ({kernel_symbol(step.kernel)}(NULL, tvmse_args{index}, {len(step.args)}, NULL) "
                           f"!= 0) return -{op.position + 1};  /* CPU: {op.builtin} {name} */")
        if steps:
            raise VelaModelError(f"CPU kernels {[s.kernel for s in steps]} are not in the optimised model's order")
        out.append(f"    tvmse_copy(mask, (const int8_t *){self.arena_ptr(iface.mask)}, TVMSE_MASK_SIZE);")
        for i, o in iface.state.items():
            out.append(f"    tvmse_copy(state->{state[i]}, (const int8_t *){self.arena_ptr(o)}, "
                       f"sizeof(state->{state[i]}));")
        out += ["    return 0;", "}", ""]
        return out


def generate(graph: IntegerGraph, optimized_model: bytes) -> NpuGlue:
    """Every C file of the Ethos-U firmware glue for ``graph`` as Vela compiled it."""
    model = vela_model.read(optimized_model)
    interface = glue.Interface.of(graph)
    for name in [interface.frame, interface.mask, *interface.state, *interface.state.values()]:
        model.by_name(name)  # raises naming a missing tensor
    sub = cpu_graph(graph, model)
    network = lower.lower(sub, in_place_concat=False) if sub is not None else None  # Vela places the tensors
    data_c, data_symbols = _npu_data_c(model)
    writer = _ModelWriter(graph, model, interface, network, data_symbols)
    model_c, kernels = writer.write()
    files = {NPU_HEADER: NPU_HEADER_TEXT,
             "tvmse_model.h": _header(model, interface, max(model.arena_bytes, 16)),
             "tvmse_model.c": model_c, NPU_DATA: data_c}
    if network is not None:
        weights, _ = glue._weights_c(network)
        files |= {ABI_HEADER_NAME: ABI_HEADER, "tvmse_weights.c": weights,
                  glue.FC_SOURCE: build_c(network.fc_kernels) if network.fc_kernels else "/* no FC kernels */\n",
                  glue.OTHER_SOURCE: build_c(network.other_kernels) if network.other_kernels
                  else "/* no other kernels */\n"}
    state_bytes = sum(model.by_name(i).nbytes for i in interface.state)
    log.info("Ethos-U glue: %d NPU calls, %d CPU ops (%d kernels), arena %d B",
             len(model.npu_calls), len(model.cpu_ops), len(kernels), model.arena_bytes)
    return NpuGlue(files, model, interface, network, kernels, max(model.arena_bytes, 16),
                   writer.scratch.arena_bytes, state_bytes)


# ---- segmented builds: one Vela model per placement segment ----------------------------------------
@dataclasses.dataclass
class SegmentedGlue:
    """The glue of a build compiled in placement segments (``targets.ethosu.build_segmented``).

    The segments run in order over one shared arena (the largest segment's); tensors a later segment
    reads (or graph outputs made before the last segment) wait in a persistent *keep* buffer. The
    read-only data of every segment compiled for SRAM is copied from flash into SRAM once, in
    ``tvmse_init``; its NPU calls get the SRAM copy as region 0.
    """

    files: dict[str, str]
    models: list[VelaModel]           # per segment
    interface: glue.Interface
    arena_bytes: int
    keep: dict[str, int]              # boundary tensor → offset in the keep buffer
    keep_bytes: int
    sram_weight_bytes: int            # copied at tvmse_init
    state_bytes: int

    @property
    def npu_calls(self) -> list[tuple[VelaModel, NpuCall]]:
        """Every NPU call of a frame, in order, with the segment model it belongs to."""
        return [(m, call) for m in self.models for call in m.npu_calls]


def _segment_data(k: int, model: VelaModel, in_sram: bool) -> tuple[list[str], dict[int, str], list[str]]:
    """C definitions of segment ``k``'s command streams and read-only blobs; tensor → symbol used in
    region tables; the init-time copies (flash → SRAM) of an SRAM segment."""
    out, symbols, copies = [], {}, []
    for j, call in enumerate(model.npu_calls):
        cms = model.tensors[call.command_stream]
        symbols[call.command_stream] = f"tvmse_s{k}_cms{j}"
        out.append(_blob(symbols[call.command_stream], cms.data, f"segment {k}: command stream of NPU call {j}"))
        ro = call.regions[0]
        if ro in symbols:
            continue
        flash = f"tvmse_s{k}_ro{j}"
        out.append(_blob(flash, model.tensors[ro].data, f"segment {k}: read-only data (encoded weights, scales)"))
        symbols[ro] = flash
        if in_sram:
            symbols[ro] = f"tvmse_s{k}_ro{j}_sram"
            copies.append((symbols[ro], flash, len(model.tensors[ro].data)))
    return out, symbols, copies


def generate_segmented(graph: IntegerGraph, segmented) -> SegmentedGlue:
    """Every C file of the Ethos-U glue for a segmented build (a ``targets.ethosu.SegmentedBuild``).

    Raises VelaModelError when a segment leaves an op on the CPU (the segmented glue runs NPU-only
    segments; the unsegmented glue handles CPU fallback)."""
    from tvmse.targets.ethosu import segments as segmenting

    interface = glue.Interface.of(graph)
    models = [vela_model.read(seg.vela.optimized_model) for seg in segmented.segments]
    for k, model in enumerate(models):
        if model.cpu_ops:
            raise VelaModelError(f"segment {k} leaves {[op.builtin for op in model.cpu_ops]} on the CPU; the "
                                 "segmented glue runs NPU-only segments (compile without a placement instead)")
    parts = [seg.segment for seg in segmented.segments]
    tensors = graph.tensors()
    keep, offset = segmenting.keep_layout(parts, graph)
    arena = max(16, *(m.arena_bytes for m in models))
    data = ["/* Ethos-U command streams and read-only data per placement segment. Generated by tvmse. */",
            "#include <stdint.h>", ""]
    model_c = ["/* Glue generated by tvmse: placement segments over one arena. */", "#include <stddef.h>",
               "#include <stdint.h>", "", '#include "tvmse_model.h"', f'#include "{NPU_HEADER}"', "",
               f"static uint8_t tvmse_arena[{arena}] __attribute__((aligned(16)));",
               f"static int8_t tvmse_keep[{max(offset, 4)}] __attribute__((aligned(16)));"]
    copies, calls = [], []
    for k, (seg, model) in enumerate(zip(segmented.segments, models)):
        defs, symbols, seg_copies = _segment_data(k, model, seg.segment.in_sram)
        data += defs
        flash_symbols = [s for s in symbols.values() if not s.endswith("_sram")] + [src for _, src, _ in seg_copies]
        model_c += [f"extern const uint8_t {s}[];" for s in dict.fromkeys(flash_symbols)]
        for dst, _, size in seg_copies:
            model_c.append(f"static uint8_t {dst}[{size}] __attribute__((aligned(16)));  /* placed weights */")
        copies += seg_copies
        for j, call in enumerate(model.npu_calls):
            name = f"s{k}_{j}"
            ptrs = [symbols[t] if r == 0 else f"tvmse_arena + {model.tensors[t].offset}"
                    for r, t in enumerate(call.regions)]
            sizes = [str(len(model.tensors[t].data) if r == 0 else model.tensors[t].nbytes)
                     for r, t in enumerate(call.regions)]
            model_c += [f"static const uint8_t *const tvmse_npu_regions_{name}[{len(ptrs)}] = {{{', '.join(ptrs)}}};",
                        f"static const size_t tvmse_npu_sizes_{name}[{len(sizes)}] = {{{', '.join(sizes)}}};"]
            calls.append((k, model, call, symbols, name))
    model_c += _segmented_functions(interface, parts, models, keep, copies, calls)
    state_bytes = sum(int(np.prod(tensors[i].shape)) for i in interface.state)
    sizes = {n: int(np.prod(tensors[n].shape)) for n in [interface.frame, interface.mask, *interface.state]}
    header = glue.model_header(
        "Streaming step of an int8 network compiled by tvmse for the Cortex-M55 + Ethos-U (Vela), in placement "
        "segments.",
        " * Segments run in order through tvmse_npu_invoke() (tvmse_npu.h) over one arena; weights placed in SRAM\n"
        " * are copied there from flash once, by tvmse_init(). No heap. Not re-entrant.\n"
        " * Returns 0, or -(k+1) if NPU call k of the frame failed.",
        interface, sizes, arena,
        {"TVMSE_NUM_NPU_CALLS": len(calls), "TVMSE_NUM_SEGMENTS": len(models), "TVMSE_KEEP_BYTES": max(offset, 4),
         "TVMSE_SRAM_WEIGHT_BYTES": sum(size for _, _, size in copies)})
    files = {NPU_HEADER: NPU_HEADER_TEXT, "tvmse_model.h": header, "tvmse_model.c": "\n".join(model_c),
             NPU_DATA: "\n".join(data)}
    log.info("Ethos-U glue: %d segments, %d NPU calls, arena %d B, keep %d B, %d B of weights copied to SRAM",
             len(models), len(calls), arena, offset, sum(size for _, _, size in copies))
    return SegmentedGlue(files, models, interface, arena, keep, offset, sum(size for _, _, size in copies),
                         state_bytes)


def _segmented_functions(interface: glue.Interface, parts, models: list[VelaModel], keep: dict[str, int],
                         copies: list[tuple[str, str, int]], calls) -> list[str]:
    state = {i: relax_name(i) for i in interface.state}

    def home(name: str) -> str:
        """Where a tensor lives between segments: the caller's frame or state, or the keep buffer."""
        if name == interface.frame:
            return "frame"
        if name in state:
            return f"state->{state[name]}"
        return f"(tvmse_keep + {keep[name]})"

    out = [""] + _HELPERS_AND_INIT
    out += [f"    tvmse_copy((int8_t *){dst}, (const int8_t *){src}, {size});  /* weights flash → SRAM, once */"
            for dst, src, size in copies]
    out += ["}", "", "int tvmse_step(const int8_t *frame, int8_t *mask, tvmse_state_t *state)", "{"]
    index = 0
    last = len(parts) - 1
    for k, (part, model) in enumerate(zip(parts, models)):
        out.append(f"    /* segment {k}: {'weights in SRAM' if part.in_sram else 'weights in flash'} */")
        for t in part.graph.inputs:
            out.append(f"    tvmse_copy((int8_t *)(tvmse_arena + {model.by_name(t.name).offset}), "
                       f"(const int8_t *){home(t.name)}, {model.by_name(t.name).nbytes});")
        for kk, m, call, symbols, name in calls:
            if kk != k:
                continue
            cms = m.tensors[call.command_stream]
            out.append(f"    if (tvmse_npu_run({symbols[call.command_stream]}, {len(cms.data)}, "
                       f"tvmse_npu_regions_{name}, tvmse_npu_sizes_{name}, {len(call.regions)}) != 0) "
                       f"return -{index + 1};")
            index += 1
        if k < last:
            for name in part.graph.outputs:
                out.append(f"    tvmse_copy(tvmse_keep + {keep[name]}, (const int8_t *)(tvmse_arena + "
                           f"{model.by_name(name).offset}), {model.by_name(name).nbytes});")

    def result(name: str) -> str:
        return f"(const int8_t *)(tvmse_arena + {models[-1].by_name(name).offset})" if name not in keep \
            else f"(const int8_t *)(tvmse_keep + {keep[name]})"

    out.append(f"    tvmse_copy(mask, {result(interface.mask)}, TVMSE_MASK_SIZE);")
    for i, o in interface.state.items():
        out.append(f"    tvmse_copy(state->{state[i]}, {result(o)}, sizeof(state->{state[i]}));")
    out += ["    return 0;", "}", ""]
    return out
