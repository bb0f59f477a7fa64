"""Write a binary blob (the Vela-optimised model) as a C header with an aligned byte array."""

from __future__ import annotations

import re

# The Ethos-U driver reads the command stream and weights by DMA: 16-byte alignment is required.
ALIGNMENT = 16


def c_identifier(name: str) -> str:
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return ident if not ident[:1].isdigit() else f"m_{ident}"


def c_header(data: bytes, symbol: str, comment: str = "") -> str:
    symbol = c_identifier(symbol)
    guard = f"TVMSE_{symbol.upper()}_H"
    lines = [f"/* {comment} */" if comment else "", f"#ifndef {guard}", f"#define {guard}", "",
             "#include <stddef.h>", "#include <stdint.h>", "",
             f"#define {symbol.upper()}_SIZE {len(data)}u", "",
             f"static const uint8_t {symbol}[{len(data)}] __attribute__((aligned({ALIGNMENT}))) = {{"]
    for start in range(0, len(data), 16):
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in data[start:start + 16]) + ",")
    lines += ["};", "", f"#endif /* {guard} */", ""]
    return "\n".join(line for line in lines if line is not None)
