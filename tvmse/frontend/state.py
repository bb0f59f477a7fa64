"""Pair a streaming model's state inputs with the outputs that feed them at the next step.

A streaming step takes the frame and the state (h, c of an LSTM, h of a GRU, a conv's history) and
returns its result and the new state. Converters name these tensors in many ways, so pairs are
found by, in order:

1. ``--state IN=OUT`` given by the user (``explicit``);
2. names: ``X`` → ``X_out``/``Xout``, ``*_in*`` → ``*_out*``, ``*state_in*`` → ``*state_out*``,
   ``*prev_state*`` → ``*state*``/``*next_state*`` (on tensor names and TFLite signature keys);
3. a unique match of size and quantization: an input and an output with the same number of elements
   and the same scale and zero point, each the only candidate of the other (converters calibrate a
   state input and the output fed back into it alike);
4. a unique size match, as long as at least one input (the frame) stays unpaired: where every
   input would pair, inputs named like a per-step input (``frame``, ``input``, ``features``, ``mfcc``,
   ``spec``, ``x``, …) are left out.

An input left unpaired is a per-step input (the frame); an output left unpaired is a result. The
shapes of a pair may differ in unit axes (``[1, C]`` in, ``[1, 1, C]`` out): the host rollout
reshapes. How each pair was found is kept for the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from tvmse.errors import ConfigError


@dataclass
class Port:
    """A graph input or output: tensor name, the other names it goes by (signature keys), shape."""

    name: str
    shape: tuple[int, ...]
    aliases: tuple[str, ...] = ()
    quant: tuple[float, int] | None = None   # (scale, zero point)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class StatePairs:
    pairs: dict[str, str] = field(default_factory=dict)   # input name → output name
    how: dict[str, str] = field(default_factory=dict)     # input name → "given", "by name", "by size", …

    def report(self) -> list[dict]:
        return [{"input": i, "output": o, "found": self.how[i]} for i, o in self.pairs.items()]


def _norm(name: str) -> str:
    """Lower case, without a converter's ':0' suffix or 'serving_default_' prefix."""
    name = re.sub(r":\d+$", "", name.lower())
    return name.removeprefix("serving_default_")


_PER_STEP_WORDS = {"frame", "frames", "input", "inputs", "feature", "features", "feat", "feats", "mfcc", "spec",
                   "spectrum", "audio", "x", "noisy", "mixture", "mix", "signal", "samples"}


def _looks_per_step(port: Port) -> bool:
    """Named like the per-step input rather than state."""
    return any(set(re.split(r"[^a-z0-9]+|\d+", _norm(n))) & _PER_STEP_WORDS for n in port.names)


def _close_quant(a: tuple[float, int] | None, b: tuple[float, int] | None) -> bool:
    """Same zero point and a scale equal within float32 rounding (converters round state scales apart)."""
    return a is not None and b is not None and a[1] == b[1] and abs(a[0] - b[0]) <= 1e-5 * max(a[0], b[0])


def _name_candidates(name: str) -> set[str]:
    """Output names that would pair with input ``name`` under the naming rules."""
    n = _norm(name)
    out = {f"{n}_out", f"{n}out", f"{n}_next", f"next_{n}", f"new_{n}"}
    for a, b in (("_in", "_out"), ("in_", "out_"), ("input", "output"), ("prev_state", "state"),
                 ("prev_state", "next_state"), ("state_in", "state_out"), ("_prev", "")):
        if a in n:
            out.add(n.replace(a, b))
    return out


def pair_states(inputs: list[Port], outputs: list[Port], explicit: dict[str, str] | None = None) -> StatePairs:
    result = StatePairs()
    by_name_in = {alias: p for p in inputs for alias in p.names}
    by_name_out = {alias: p for p in outputs for alias in p.names}
    for given_in, given_out in (explicit or {}).items():
        if given_in not in by_name_in:
            raise ConfigError(f"--state {given_in}={given_out}: the model has no input '{given_in}' "
                              f"(inputs: {', '.join(p.name for p in inputs)})")
        if given_out not in by_name_out:
            raise ConfigError(f"--state {given_in}={given_out}: the model has no output '{given_out}' "
                              f"(outputs: {', '.join(p.name for p in outputs)})")
        i, o = by_name_in[given_in], by_name_out[given_out]
        if i.size != o.size:
            raise ConfigError(f"--state {given_in}={given_out}: shapes {list(i.shape)} and {list(o.shape)} "
                              "hold different numbers of values")
        result.pairs[i.name], result.how[i.name] = o.name, "given"
    if explicit:
        return result

    free_out = list(outputs)
    for i in inputs:
        wanted = _name_candidates(i.name) | {c for alias in i.aliases for c in _name_candidates(alias)}
        match = [o for o in free_out if any(_norm(n) in wanted for n in o.names) and o.size == i.size]
        if len(match) == 1:
            result.pairs[i.name], result.how[i.name] = match[0].name, "by name"
            free_out.remove(match[0])

    def unique_matches(same) -> dict[str, Port]:
        free_in = [i for i in inputs if i.name not in result.pairs]
        found = {}
        for i in free_in:
            match = [o for o in free_out if same(i, o)]
            if len(match) == 1 and sum(same(j, match[0]) for j in free_in) == 1:
                found[i.name] = match[0]
        return found

    for i, o in unique_matches(lambda i, o: i.size == o.size and _close_quant(i.quant, o.quant)).items():
        result.pairs[i], result.how[i] = o.name, "by size and quantization"
        free_out.remove(o)
    free_in = [i for i in inputs if i.name not in result.pairs]
    by_size = unique_matches(lambda i, o: i.size == o.size)
    if len(by_size) == len(free_in):
        by_size = {i.name: by_size[i.name] for i in free_in if i.name in by_size and not _looks_per_step(i)}
    if len(by_size) < len(free_in):   # at least one input stays the frame
        for i, o in by_size.items():
            result.pairs[i], result.how[i] = o.name, "by size"
    return result
