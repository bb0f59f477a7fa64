"""Build TIR kernels to C with TVM and make the C free-standing.

``tvm.tirx.build(..., target="c")`` emits packed-FFI C: each kernel is
``int32_t __tvm_ffi_<symbol>(void* self, void* args, int32_t num_args, void* result)`` taking an
array of ``TVMFFIAny`` whose ``v_ptr`` points at a ``DLTensor``. The source includes TVM's headers
and defines a library context and a ``__tvm_ffi_main`` alias, which the host runtime uses. For
firmware we keep the kernels exactly as TVM wrote them and only

- replace TVM's includes by ``tvmse_tvm_abi.h``, the few C types the kernels use (layouts identical
  to dlpack's ``DLTensor`` and tvm-ffi's ``TVMFFIAny``), so no TVM installation is needed to compile;
- make the library context ``static`` and drop the ``__tvm_ffi_main`` alias, so several kernel
  files link together;
- place the C of the helpers the kernels call (``T.call_extern``) after the includes: a kernel
  names them in its ``tvmse.c_helpers`` attribute (C text), each text placed once.

Asserts are stripped at build time (``tirx.disable_assert``): argument checking is the glue's job,
which passes fixed, statically planned tensors.
"""

from __future__ import annotations

import re

import tvm

ABI_HEADER_NAME = "tvmse_tvm_abi.h"

ABI_HEADER = """\
/*
 * The C types used by kernels that TVM's C code generator writes (packed-FFI calling convention),
 * with the layouts of dlpack's DLTensor and tvm-ffi's TVMFFIAny, so kernels compile without TVM.
 */
#ifndef TVMSE_TVM_ABI_H
#define TVMSE_TVM_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TVM_DLL

typedef struct {
    int32_t device_type; /* kDLCPU = 1 */
    int32_t device_id;
} DLDevice;

typedef struct {
    uint8_t code; /* kDLInt = 0 */
    uint8_t bits;
    uint16_t lanes;
} DLDataType;

typedef struct {
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
} DLTensor;

/* tvm-ffi's type index of a DLTensor* argument */
#define TVMSE_FFI_DLTENSOR_PTR 7

typedef struct {
    int32_t type_index;
    uint32_t zero_padding;
    union {
        int64_t v_int64;
        double v_float64;
        void *v_ptr;
    };
} TVMFFIAny;

typedef int32_t (*tvmse_kernel_fn)(void *self, void *args, int32_t num_args, void *result);

#endif /* TVMSE_TVM_ABI_H */
"""

_TVM_INCLUDE = re.compile(r'^#include "tvm/[^"]+"\n', re.MULTILINE)
_ENTRY_ALIAS = re.compile(r"// CodegenC: NOTE: Auto-generated entry function.*\Z", re.DOTALL)
#: PrimFunc attribute holding the C of the helpers a kernel calls.
C_HELPERS_ATTR = "tvmse.c_helpers"


def build_c(kernels: dict[str, tvm.tirx.PrimFunc]) -> str:
    """C source of ``kernels`` (symbol → PrimFunc with that ``global_symbol``), free-standing."""
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        lib = tvm.tirx.build(tvm.IRModule(dict(kernels)), target="c")
    source = lib.inspect_source()
    source = _TVM_INCLUDE.sub("", source, count=0)
    helpers = dict.fromkeys(str(f.attrs[C_HELPERS_ATTR]) for f in kernels.values()
                            if f.attrs is not None and C_HELPERS_ATTR in f.attrs)
    source = source.replace("#define TVM_EXPORTS\n", f'#include "{ABI_HEADER_NAME}"\n' + "".join(helpers), 1)
    source = source.replace("void* __tvm_ffi__library_ctx = NULL;",
                            "static void* __tvm_ffi__library_ctx __attribute__((unused)) = NULL;")
    source = _ENTRY_ALIAS.sub("", source)
    missing = [s for s in kernels if f"__tvm_ffi_{s}(" not in source]
    if missing:
        raise RuntimeError(f"TVM's C output lacks kernels {missing}")
    return source


def kernel_symbol(name: str) -> str:
    """The C function TVM emits for a PrimFunc with ``global_symbol`` ``name``."""
    return f"__tvm_ffi_{name}"
