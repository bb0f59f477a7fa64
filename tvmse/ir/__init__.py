"""tvmse's canonical integer form: a Relax IRModule of int8 ops and its Python view."""

from tvmse.ir.graph import IntegerGraph, IntOp, TensorInfo, OP_KINDS

__all__ = ["IntegerGraph", "IntOp", "TensorInfo", "OP_KINDS"]
