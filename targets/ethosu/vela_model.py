"""Read a Vela-optimised TFLite model as firmware needs it: NPU calls, CPU ops, one arena.

Vela replaces each run of NPU-supported operators by one ``ethos-u`` custom operator and leaves
the rest as ordinary TFLite operators for the CPU. It also plans the memory of every non-constant
tensor offline (metadata ``OfflineMemoryAllocation``: version, subgraph count, tensor count, then one
arena offset per tensor, −1 for constants), exactly as TensorFlow Lite Micro then lays them out.

TFLM's Ethos-U kernel (``tensorflow/lite/micro/kernels/ethos_u/ethosu.cc``) invokes the NPU with
the custom op's command stream (input 0) and one *region* per remaining input and per output, in
that order: region ``r`` is the address and byte size of tensor ``inputs[r + 1]`` (then the
outputs), cut to the first 8 ("the tensors that require a base pointer are among the 8 first").
Vela always puts the read-only data (encoded weights, scales; flash) at region 0, the scratch
tensor (the arena base; the NPU's feature maps are addressed inside it) at region 1 and the fast
scratch at region 2; the custom op's activation inputs and outputs follow. ``VelaModel`` keeps
exactly that order so the C glue can rebuild the table.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tvmse.errors import TvmseError

CUSTOM_CODE = b"ethos-u"
OFFLINE_PLAN = b"OfflineMemoryAllocation"
#: TFLM passes at most this many regions to the driver (``ethosu.cc``).
MAX_REGIONS = 8
#: Regions before the activations: read-only data, scratch, fast scratch.
FIXED_REGIONS = 3


class VelaModelError(TvmseError):
    """The optimised model lacks something the firmware glue needs (named in the message)."""


@dataclasses.dataclass(frozen=True)
class ModelTensor:
    """A tensor of the optimised model: arena offset (None for constants) and, if constant, its bytes."""

    index: int
    name: str
    shape: tuple[int, ...]
    nbytes: int
    offset: int | None
    data: bytes | None


@dataclasses.dataclass(frozen=True)
class NpuCall:
    """One ``ethos-u`` custom operator: its command stream and its region table (tensor indices)."""

    position: int  # index among all operators of the model
    command_stream: int  # tensor index
    regions: tuple[int, ...]  # tensor index of region 0, 1, …
    inputs: tuple[int, ...]  # activation inputs (a subset of regions)
    outputs: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class CpuOp:
    """An operator Vela left for the CPU."""

    position: int
    builtin: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclasses.dataclass
class VelaModel:
    tensors: list[ModelTensor]
    operators: list[NpuCall | CpuOp]  # in execution order
    inputs: list[int]
    outputs: list[int]

    @property
    def npu_calls(self) -> list[NpuCall]:
        return [op for op in self.operators if isinstance(op, NpuCall)]

    @property
    def cpu_ops(self) -> list[CpuOp]:
        return [op for op in self.operators if isinstance(op, CpuOp)]

    def by_name(self, name: str) -> ModelTensor:
        found = [t for t in self.tensors if t.name == name]
        if len(found) != 1:
            raise VelaModelError(f"the optimised model has {len(found)} tensors named '{name}'")
        return found[0]

    @property
    def arena_bytes(self) -> int:
        """Bytes from the arena base to the end of the last planned tensor (scratch included)."""
        return max((t.offset + t.nbytes for t in self.tensors if t.offset is not None), default=0)


def _check_fixed_regions(position: int, regions: tuple[int, ...], tensors: list[ModelTensor]) -> None:
    """Region 0 must be constant bytes (weights), regions 1–2 planned arena tensors (scratch)."""
    if len(regions) < FIXED_REGIONS or tensors[regions[0]].data is None:
        raise VelaModelError(f"ethos-u operator {position}: region 0 is not Vela's read-only data")
    for r in regions[1:FIXED_REGIONS]:
        if tensors[r].offset is None:
            raise VelaModelError(f"ethos-u operator {position}: region tensor '{tensors[r].name}' has no arena "
                                 "offset in Vela's plan; the glue needs every region but 0 inside the arena")
    for r in regions[FIXED_REGIONS:]:
        if tensors[r].offset is None:
            raise VelaModelError(f"ethos-u operator {position}: activation '{tensors[r].name}' has no arena offset")


def _builtin_names() -> dict[int, str]:
    import tflite
    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _offline_offsets(model, n_tensors: int) -> list[int]:
    for i in range(model.MetadataLength()):
        meta = model.Metadata(i)
        if meta.Name() == OFFLINE_PLAN:
            words = model.Buffers(meta.Buffer()).DataAsNumpy().view(np.int32)
            version, subgraphs, count = (int(w) for w in words[:3])
            if version != 0 or subgraphs != 1 or count != n_tensors:
                raise VelaModelError(f"unexpected {OFFLINE_PLAN.decode()} header (version {version}, "
                                     f"{subgraphs} subgraphs, {count} tensors; expected 0, 1, {n_tensors})")
            return [int(w) for w in words[3:3 + count]]
    raise VelaModelError(f"the optimised model has no '{OFFLINE_PLAN.decode()}' metadata (arena plan)")


def read(optimized_model: bytes) -> VelaModel:
    """Parse Vela's output; raises VelaModelError when it has several subgraphs or no arena plan."""
    import tflite

    model = tflite.Model.GetRootAsModel(optimized_model, 0)
    if model.SubgraphsLength() != 1:
        raise VelaModelError(f"the optimised model has {model.SubgraphsLength()} subgraphs; the glue handles one")
    graph = model.Subgraphs(0)
    offsets = _offline_offsets(model, graph.TensorsLength())
    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        buf = model.Buffers(t.Buffer())
        data = buf.DataAsNumpy().tobytes() if buf.DataLength() else None
        # TFLM's region size is the product of the dims (bytes for the int8/uint8 tensors involved)
        tensors.append(ModelTensor(i, t.Name().decode(), shape, int(np.prod(shape, dtype=np.int64)),
                                   offsets[i] if offsets[i] >= 0 else None, data))
    names = _builtin_names()
    operators: list[NpuCall | CpuOp] = []
    for p in range(graph.OperatorsLength()):
        op = graph.Operators(p)
        code = model.OperatorCodes(op.OpcodeIndex())
        ins = tuple(int(i) for i in op.InputsAsNumpy())
        outs = tuple(int(i) for i in op.OutputsAsNumpy())
        if code.CustomCode() == CUSTOM_CODE:
            # as TFLM: the first 8 only (Vela addresses feature maps inside the scratch region)
            regions = (ins[1:] + outs)[:MAX_REGIONS]
            _check_fixed_regions(p, regions, tensors)
            operators.append(NpuCall(p, ins[0], regions, ins[1 + FIXED_REGIONS:], outs))
        else:
            builtin = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            operators.append(CpuOp(p, builtin, ins, outs))
    return VelaModel(tensors, operators, [int(i) for i in graph.InputsAsNumpy()],
                     [int(i) for i in graph.OutputsAsNumpy()])
