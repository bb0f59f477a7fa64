"""The static call glue: TVM 0.27 has no AOT executor, so tvmse writes the step function itself.

Generated files (all plain C99/C11, no heap, no TVM runtime):

    tvmse_model.h       the API: tvmse_state_t, tvmse_init(state), tvmse_run(inputs[], outputs[], state)
                        and, for a streaming step (one frame, one mask), tvmse_step(frame, mask, state)
    tvmse_model.c       one statically planned arena, a DLTensor per tensor, the kernel calls in order
    tvmse_weights.c     every constant (weights, folded biases, multipliers, tables) as const arrays;
                        arrays of FLASH_MIN_BYTES or more in section .flash_rodata (link it to flash)
    tvmse_kernels.c     TVM-generated kernels of the element-wise ops
    tvmse_kernels_fc.c  TVM-generated fully-connected kernels (built with MVE-width vectorization)
    tvmse_tvm_abi.h     the C types of TVM's packed-FFI kernels

Network inputs paired with an output are the streaming state (``tvmse.frontend.state``); ``tvmse_run``
reads the state from ``*state`` and, after the last kernel, overwrites it with the new state, so the
caller just calls it (or ``tvmse_step``) frame after frame. Other inputs and outputs are passed by
pointer, in graph order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tvmse.ir.graph import relax_name
from tvmse.targets.cortex_m import memory_plan
from tvmse.targets.cortex_m.errors import LoweringError
from tvmse.targets.cortex_m.kernels_c import ABI_HEADER, ABI_HEADER_NAME, build_c, kernel_symbol
from tvmse.targets.cortex_m.lower import LoweredNetwork
from tvmse.targets.host.reference import streaming_state_pairs

C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t",
           "bool": "uint8_t"}
DL_TYPES = {"int8": (0, 8), "uint8": (1, 8), "int16": (0, 16), "int32": (0, 32), "int64": (0, 64), "bool": (6, 8)}
FC_SOURCE = "tvmse_kernels_fc.c"
#: Constants of at least this size go to section .flash_rodata (external flash; DDR under QEMU), the
#: rest stays in .rodata (internal memory, ITCM here).
FLASH_MIN_BYTES = 4096
OTHER_SOURCE = "tvmse_kernels.c"
#: Extra flags for the FC kernels with clang: vectorize for Helium's 16 int8 lanes. Left to its cost
#: model, clang picks 4 lanes (widening loads) for the row-blocked loop: 4x the instructions.
FC_CLANG_FLAGS = ("-mllvm", "-force-vector-width=16")


@dataclasses.dataclass
class Interface:
    """How the network's inputs and outputs map onto the C API's arguments.

    ``inputs`` / ``outputs``: the network's inputs and outputs other than the streaming state, in graph
    order (``tvmse_run``'s pointer arrays); a streaming model has one of each, the frame and the mask
    (``tvmse_step``)."""

    inputs: list[str]
    outputs: list[str]
    state: dict[str, str]  # state input → state output

    @property
    def streaming(self) -> bool:
        return len(self.inputs) == 1 and len(self.outputs) == 1

    @property
    def frame(self) -> str:
        self._require_streaming()
        return self.inputs[0]

    @property
    def mask(self) -> str:
        self._require_streaming()
        return self.outputs[0]

    def _require_streaming(self) -> None:
        if not self.streaming:
            raise LoweringError(f"the C API tvmse_step takes one frame input and one mask output besides the "
                                f"state (<name> → <name>_out); the model has inputs {self.inputs} and outputs "
                                f"{self.outputs}")

    @classmethod
    def of(cls, graph, any_count: bool = False) -> "Interface":
        """The interface of ``graph``; unless ``any_count``, it must be a streaming step (one frame, one mask)."""
        pairs = streaming_state_pairs(graph)
        interface = cls([t.name for t in graph.inputs if t.name not in pairs],
                        [o for o in graph.outputs if o not in pairs.values()], pairs)
        if not any_count:
            interface._require_streaming()
        if not interface.inputs or not interface.outputs:
            raise LoweringError(f"the model needs at least one input and one output besides the state; it has "
                                f"inputs {interface.inputs} and outputs {interface.outputs}")
        return interface


@dataclasses.dataclass
class Glue:
    files: dict[str, str]  # file name → text
    plan: memory_plan.MemoryPlan
    interface: Interface
    state_bytes: int
    kernel_functions: list[str]  # C function of each step, in call order
    generated_symbols: set[str]  # every symbol the generated files define (for size accounting)
    fc_sources: tuple[str, ...] = (FC_SOURCE,)


def lifetimes(network: LoweredNetwork, interface: Interface) -> dict[str, tuple[int, int, int]]:
    """Arena tensor → (bytes, first step, last step); network outputs live to the end. A view
    (``network.views``) is no entry of its own: it extends its root's lifetime."""
    end = len(network.steps)
    views = memory_plan.resolve_views(network.views)
    first, last = {}, {}

    def touch(name: str, step: int) -> None:
        root = views.get(name, (name, 0))[0]
        first[root] = min(first.get(root, step), step)
        last[root] = max(last.get(root, step), step)

    for i, step in enumerate(network.steps):
        for name in step.args:
            touch(name, i)
    for out in [*interface.outputs, *interface.state.values()]:
        touch(out, end)
    return {n: (network.tensors[n].nbytes, first[n], last[n]) for n in first
            if network.tensors[n].kind == "arena"}


def c_values(values: np.ndarray) -> str:
    """The body of a C array initializer: ``values`` flattened, 24 a line (int64 with the LL suffix)."""
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    if np.asarray(values).dtype == np.int64:
        flat = [f"{v}LL" for v in flat]
    rows = [", ".join(flat[i:i + 24]) for i in range(0, len(flat), 24)]
    return ",\n    ".join(rows)


def _weights_c(network: LoweredNetwork) -> tuple[str, list[str]]:
    lines = ["/* Constants of the network: placed in flash (.rodata). Generated by tvmse. */",
             "#include <stdint.h>", ""]
    names = []
    for t in network.tensors.values():
        if t.kind != "const":
            continue
        names.append(t.name)
        where = " __attribute__((section(\".flash_rodata\")))" if t.nbytes >= FLASH_MIN_BYTES else ""
        lines.append(f"const {C_TYPES[t.dtype]} {t.name}[{max(1, t.value.size)}] __attribute__((aligned(16))){where} = {{\n"
                     f"    {c_values(t.value)}\n}};")
    return "\n".join(lines) + "\n", names


def _header(network: LoweredNetwork, interface: Interface, arena: int) -> str:
    sizes = {name: network.tensors[name].nbytes for name in [*interface.inputs, *interface.outputs, *interface.state]}
    return model_header(
        "Step of an int8 network compiled by tvmse for the Cortex-M55.",
        " * No heap; one statically allocated arena of TVMSE_ARENA_BYTES holds every intermediate tensor.\n"
        " * Not re-entrant (the arena is shared): call from one thread. Returns 0, or -(k+1) if kernel k failed.",
        interface, sizes, arena, {"TVMSE_NUM_KERNELS": len(network.steps)}, run_api=True)


def _run_api(interface: Interface, sizes: dict[str, int]) -> tuple[str, str, str]:
    """Usage lines, ``#define``s and declarations of ``tvmse_run`` (inputs and outputs by pointer arrays)."""
    usage = (" *   const int8_t *inputs[TVMSE_NUM_INPUTS] = {...};  int8_t *outputs[TVMSE_NUM_OUTPUTS] = {...};\n"
             " *   tvmse_run(inputs, outputs, &state);        // any number of inputs and outputs, order below\n")
    lines = [f"#define TVMSE_NUM_INPUTS {len(interface.inputs)}", f"#define TVMSE_NUM_OUTPUTS {len(interface.outputs)}"]
    lines += [f"#define TVMSE_INPUT{k}_SIZE {sizes[n]}   /* int8 elements of input '{n}' */"
              for k, n in enumerate(interface.inputs)]
    lines += [f"#define TVMSE_OUTPUT{k}_SIZE {sizes[n]}   /* int8 elements of output '{n}' */"
              for k, n in enumerate(interface.outputs)]
    declaration = ("int tvmse_run(const int8_t *const inputs[TVMSE_NUM_INPUTS], int8_t *const outputs[TVMSE_NUM_OUTPUTS],"
                   "\n              tvmse_state_t *state);")
    return usage, "\n".join(lines), declaration


def model_header(title: str, notes: str, interface: Interface, sizes: dict[str, int], arena: int,
                 counts: dict[str, int], run_api: bool = False) -> str:
    """``tvmse_model.h``: the C API (state struct, ``tvmse_init``, ``tvmse_step``, sizes).

    Shared by the CPU-only and the NPU glue so an application sees one API whichever target built
    it; ``notes`` (comment lines) says how this build runs, ``counts`` adds its own ``#define``s.
    ``tvmse_step(frame, mask, state)`` is declared for a streaming step (one frame, one mask);
    ``run_api`` adds ``tvmse_run(inputs[], outputs[], state)`` for any number of inputs and outputs.
    """
    fields = "\n".join(f"    int8_t {relax_name(i)}[{sizes[i]}];" for i in interface.state)
    defines = "\n".join(f"#define {name} {value}" for name, value in counts.items())
    run_usage, run_defines, run_declaration = _run_api(interface, sizes) if run_api else ("", "", "")
    step_usage = " *   for each frame: tvmse_step(frame, mask, &state);\n" if interface.streaming else ""
    step_defines = (f"#define TVMSE_FRAME_SIZE {sizes[interface.inputs[0]]}   /* int8 elements of '{interface.inputs[0]}' */\n"
                    f"#define TVMSE_MASK_SIZE {sizes[interface.outputs[0]]}    /* int8 elements of '{interface.outputs[0]}' */"
                    if interface.streaming else "")
    step_declaration = ("int tvmse_step(const int8_t *frame, int8_t *mask, tvmse_state_t *state);"
                        if interface.streaming else "")
    return f"""\
/*
 * {title}
 *
 *   tvmse_state_t state;
 *   tvmse_init(&state);                        // zero state (int8 0 in every element)
{step_usage}{run_usage} *
{notes}
 */
#ifndef TVMSE_MODEL_H
#define TVMSE_MODEL_H

#include <stdint.h>

{step_defines}
{run_defines}
#define TVMSE_ARENA_BYTES {arena}
#define TVMSE_STATE_BYTES {sum(sizes[i] for i in interface.state)}  /* bytes of state held in tvmse_state_t */
{defines}

typedef struct {{
{fields or '    int8_t unused;'}
}} tvmse_state_t;

void tvmse_init(tvmse_state_t *state);
{step_declaration}
{run_declaration}

#endif /* TVMSE_MODEL_H */
"""


def kernel_tables(network: LoweredNetwork, data_of) -> tuple[list[str], dict[str, str], set[str]]:
    """C definitions of a static DLTensor per kernel argument and a TVMFFIAny array per step.

    ``data_of(name)`` gives the C expression of a non-constant tensor's data pointer. Returns the
    lines, tensor name → DLTensor identifier, and the symbols defined.
    """
    tensors = network.tensors
    out, symbols = [], set()
    used = sorted({a for s in network.steps for a in s.args}, key=list(tensors).index)
    ids = {name: f"tvmse_t{i}" for i, name in enumerate(used)}
    for name in used:
        t, ident = tensors[name], ids[name]
        code, bits = DL_TYPES[t.dtype]
        shape = list(t.shape) or [1]
        data = f"(void *){name}" if t.kind == "const" else data_of(name)
        out.append(f"static int64_t {ident}_shape[{len(shape)}] = {{{', '.join(map(str, shape))}}};")
        out.append(f"static DLTensor {ident} = {{{data}, {{1, 0}}, {len(shape)}, {{{code}, {bits}, 1}}, "
                   f"{ident}_shape, NULL, 0}};  /* {name} */")
        symbols |= {ident, f"{ident}_shape"}
    out.append("")
    for i, step in enumerate(network.steps):
        items = ", ".join(f"{{TVMSE_FFI_DLTENSOR_PTR, 0, {{.v_ptr = &{ids[a]}}}}}" for a in step.args)
        out.append(f"static TVMFFIAny tvmse_args{i}[{len(step.args)}] = {{{items}}};  /* {step.op} */")
        symbols.add(f"tvmse_args{i}")
    return out, ids, symbols


def _entry_point(interface: Interface) -> list[str]:
    """The function that holds the call sequence: ``tvmse_step`` for a streaming step, else ``tvmse_run``."""
    if interface.streaming:
        return ["int tvmse_step(const int8_t *frame, int8_t *mask, tvmse_state_t *state)"]
    return ["int tvmse_run(const int8_t *const inputs[TVMSE_NUM_INPUTS], int8_t *const outputs[TVMSE_NUM_OUTPUTS],",
            "              tvmse_state_t *state)"]


def _model_c(network: LoweredNetwork, interface: Interface, plan: memory_plan.MemoryPlan,
             const_names: list[str]) -> tuple[str, set[str]]:
    tensors = network.tensors
    symbols = {"tvmse_arena", "tvmse_init", "tvmse_run", "tvmse_copy"}
    out = ["/* Static call glue generated by tvmse: memory plan and kernel call sequence. */",
           "#include <stddef.h>", "#include <stdint.h>", "", '#include "tvmse_model.h"',
           f'#include "{ABI_HEADER_NAME}"', ""]
    for name in const_names:
        t = tensors[name]
        out.append(f"extern const {C_TYPES[t.dtype]} {name}[{max(1, t.value.size)}];")
    for step in network.steps:
        out.append(f"int32_t {kernel_symbol(step.kernel)}(void *self, void *args, int32_t num_args, void *result);")
    out += ["", f"static uint8_t tvmse_arena[{max(plan.arena_bytes, 16)}] __attribute__((aligned(16)));", ""]

    def data_of(name: str) -> str:
        if tensors[name].kind == "arena":
            return f"(void *)(tvmse_arena + {plan.offset_of(name)})"
        return "NULL"  # a network input: set by tvmse_step / tvmse_run

    lines, ids, table_symbols = kernel_tables(network, data_of)
    out += lines
    symbols |= table_symbols

    state_fields = {i: relax_name(i) for i in interface.state}
    out += ["", "static void tvmse_copy(int8_t *dst, const int8_t *src, size_t n)", "{",
            "    for (size_t i = 0; i < n; i++) {", "        dst[i] = src[i];", "    }", "}", "",
            "void tvmse_init(tvmse_state_t *state)", "{",
            "    int8_t *bytes = (int8_t *)state;",
            "    for (size_t i = 0; i < sizeof(*state); i++) {", "        bytes[i] = 0;", "    }", "}", "",
            *_entry_point(interface), "{"]
    inputs = ["frame"] if interface.streaming else [f"inputs[{k}]" for k in range(len(interface.inputs))]
    outputs = ["mask"] if interface.streaming else [f"outputs[{k}]" for k in range(len(interface.outputs))]
    for name, pointer in zip(interface.inputs, inputs):
        if name in ids:
            out.append(f"    {ids[name]}.data = (void *){pointer};")
    for i, field in state_fields.items():
        if i in ids:
            out.append(f"    {ids[i]}.data = state->{field};")
    for i, step in enumerate(network.steps):
        out.append(f"    if ({kernel_symbol(step.kernel)}(NULL, tvmse_args{i}, {len(step.args)}, NULL) != 0) "
                   f"return -{i + 1};  /* {step.op} */")
    for name, pointer in zip(interface.outputs, outputs):
        out.append(f"    tvmse_copy({pointer}, (const int8_t *)tvmse_arena + {plan.offset_of(name)}, "
                   f"{tensors[name].nbytes});")
    for i, o in interface.state.items():
        out.append(f"    tvmse_copy(state->{state_fields[i]}, (const int8_t *)tvmse_arena + "
                   f"{plan.offset_of(o)}, {tensors[o].nbytes});")
    out += ["    return 0;", "}", ""]
    if interface.streaming:   # the generic entry point of the same API, for callers written against it
        out += ["int tvmse_run(const int8_t *const inputs[TVMSE_NUM_INPUTS], int8_t *const outputs[TVMSE_NUM_OUTPUTS],",
                "              tvmse_state_t *state)", "{", "    return tvmse_step(inputs[0], outputs[0], state);", "}",
                ""]
        symbols.add("tvmse_step")
    return "\n".join(out), symbols


def generate(network: LoweredNetwork) -> Glue:
    """Plan the arena and write every C file of the compiled network."""
    interface = Interface.of(network.graph, any_count=True)
    for out in [*interface.outputs, *interface.state.values()]:
        if network.tensors[out].kind != "arena":
            raise LoweringError(f"output '{out}' is not computed by any op (an input passed through?)")
    plan = memory_plan.plan(lifetimes(network, interface), memory_plan.resolve_views(network.views))
    weights, const_names = _weights_c(network)
    model_c, symbols = _model_c(network, interface, plan, const_names)
    files = {
        ABI_HEADER_NAME: ABI_HEADER,
        "tvmse_model.h": _header(network, interface, plan.arena_bytes),
        "tvmse_model.c": model_c,
        "tvmse_weights.c": weights,
        FC_SOURCE: build_c(network.fc_kernels) if network.fc_kernels else "/* no fully-connected kernels */\n",
        OTHER_SOURCE: build_c(network.other_kernels) if network.other_kernels else "/* no other kernels */\n",
    }
    kernels = [kernel_symbol(s.kernel) for s in network.steps]
    symbols |= set(kernels) | set(const_names)
    state_bytes = sum(network.tensors[i].nbytes for i in interface.state)
    return Glue(files, plan, interface, state_bytes, kernels, symbols)


def write(glue: Glue, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in glue.files.items():
        (directory / name).write_text(text)
        paths.append(directory / name)
    return paths
