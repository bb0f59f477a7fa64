"""Static memory plan: one arena for every intermediate tensor, offsets fixed at compile time.

A tensor lives from the step that writes it to the last step that reads it (network outputs to the
end of the step, where they are copied out). Tensors are placed largest first at the lowest
16-byte-aligned offset that overlaps no already placed tensor whose lifetime intersects its own
(greedy best-fit by size, as TFLite Micro's planner does). The arena is the largest end offset.
"""

from __future__ import annotations

import dataclasses

ALIGN = 16


@dataclasses.dataclass(frozen=True)
class Placement:
    offset: int
    size: int
    first: int  # step index that writes it
    last: int  # last step index that reads it


@dataclasses.dataclass
class MemoryPlan:
    placements: dict[str, Placement]
    arena_bytes: int
    peak_step: int  # step at which the most bytes are live
    live_bytes_at_peak: int

    def live_at(self, step: int) -> list[str]:
        return [n for n, p in self.placements.items() if p.first <= step <= p.last]


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(lifetimes: dict[str, tuple[int, int, int]]) -> MemoryPlan:
    """``lifetimes``: tensor → (size in bytes, first step, last step)."""
    placed: dict[str, Placement] = {}
    for name, (size, first, last) in sorted(lifetimes.items(), key=lambda kv: (-kv[1][0], kv[1][1], kv[0])):
        busy = sorted((p.offset, p.offset + p.size) for p in placed.values()
                      if p.first <= last and first <= p.last)
        offset = 0
        for start, end in busy:
            if offset + size <= start:
                break
            offset = max(offset, _align(end))
        placed[name] = Placement(offset, size, first, last)
    arena = _align(max((p.offset + p.size for p in placed.values()), default=0))
    steps = range(max((p.last for p in placed.values()), default=-1) + 1)
    live = {s: sum(p.size for p in placed.values() if p.first <= s <= p.last) for s in steps}
    peak = max(live, key=live.get, default=0)
    return MemoryPlan(placed, arena, peak, live.get(peak, 0))
