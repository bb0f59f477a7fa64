"""Static memory plan: one arena for every intermediate tensor, offsets fixed at compile time.

A tensor lives from the step that writes it to the last step that reads it (network outputs to the
end of the step, where they are copied out). Tensors are placed largest first at the lowest
16-byte-aligned offset that overlaps no already placed tensor whose lifetime intersects its own
(greedy best-fit by size, as TFLite Micro's planner does). The arena is the largest end offset.

A view (a part of a concatenation its kernel writes in place, ``lower.LoweredNetwork.views``) is
not placed on its own: it sits at its byte offset inside its root tensor, and the root lives from
the first step that writes or reads the root or any of its views to the last (``resolve_views``).
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
    views: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)  # view → (root, byte offset)

    def live_at(self, step: int) -> list[str]:
        return [n for n, p in self.placements.items() if p.first <= step <= p.last]

    def offset_of(self, name: str) -> int:
        """Arena offset of a placed tensor or of a view."""
        if name in self.views:
            root, offset = self.views[name]
            return self.placements[root].offset + offset
        return self.placements[name].offset


def resolve_views(views: dict[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """Views of views (nested concatenations) → (the root that is placed, total byte offset)."""
    resolved = {}
    for name, (root, offset) in views.items():
        while root in views:
            outer, extra = views[root]
            root, offset = outer, offset + extra
        resolved[name] = (root, offset)
    return resolved


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(lifetimes: dict[str, tuple[int, int, int]], views: dict[str, tuple[str, int]] | None = None) -> MemoryPlan:
    """``lifetimes``: tensor → (size in bytes, first step, last step) of every tensor that is not a view;
    ``views``: view → (root, byte offset), already resolved (``resolve_views``), roots in ``lifetimes``."""
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
    return MemoryPlan(placed, arena, peak, live.get(peak, 0), dict(views or {}))
