"""The dashboard's drift section: each signal's p-value over the checks (on a log scale, with
the level it had to reach), the alarms and the reactions."""

from __future__ import annotations

import math
import time
from html import escape
from typing import Any

from ..evaluation.report import table

WIDTH, HEIGHT, PAD = 420, 120, 30


def _y(p: float) -> float:
    """-log10 p, capped at 8, as a height."""
    return HEIGHT - min(8.0, -math.log10(max(p, 1e-8))) / 8 * HEIGHT + PAD / 2


def plot(name: str, points: list[tuple[int, float, float, bool]]) -> str:
    """One signal: (last task of the window, p-value, level, fired) per check."""
    top = max(1, max(x for x, *_ in points))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH + 2 * PAD}" '
           f'height="{HEIGHT + 2 * PAD}" role="img" aria-label="{escape(name)}">',
           f'<text x="0" y="12" font-weight="bold">{escape(name)}</text>',
           f'<text x="{PAD}" y="{HEIGHT + PAD + 14}" font-size="10">task 0 … {top}; height: '
           '-log10 p (dashed: the level to fire)</text>']

    def x(v: int) -> float:
        return PAD + v / top * WIDTH

    line = " ".join(f"{x(v):.1f},{_y(p):.1f}" for v, p, _, _ in points)
    levels = " ".join(f"{x(v):.1f},{_y(level):.1f}" for v, _, level, _ in points)
    out += [f'<polyline points="{levels}" fill="none" stroke="#c94a4a" stroke-dasharray="4"/>',
            f'<polyline points="{line}" fill="none" stroke="#3b7dd8"/>']
    out += [f'<circle cx="{x(v):.1f}" cy="{_y(p):.1f}" r="{3 if fired else 1.5}" '
            f'fill="{"#c94a4a" if fired else "#3b7dd8"}"><title>task {v}: p = {p:.3g}'
            f'</title></circle>' for v, p, _, fired in points]
    out.append("</svg>")
    return "".join(out)


def section(drift: dict[str, Any] | None) -> list[str]:
    if not drift:
        return []
    parts = ["<h2>Drift</h2>", f"<p><b>{escape(drift['headline'])}</b></p>"]
    series: dict[str, list[tuple[int, float, float, bool]]] = {}
    for c in drift["checks"]:
        for s in c["signals"]:
            if s["p_value"] is not None:
                series.setdefault(s["name"], []).append(
                    (c["last_seq"] or 0, s["p_value"], s["level"], s["fired"]))
    parts += [plot(name, points) for name, points in sorted(series.items())]
    if drift["alarms"]:
        parts.append(table([{"alarm": a["id"], "raised": _when(a["raised"]),
                             "at task": a["raised_seq"], "signals": ", ".join(a["signals"]),
                             "labels": "every" if a["labels"] is None else ", ".join(a["labels"]),
                             "cleared": _when(a["cleared"]) if a["cleared"] else "active",
                             "by": a["cleared_by"] or ""} for a in drift["alarms"]],
                           ["alarm", "raised", "at task", "signals", "labels", "cleared", "by"]))
        parts.append(table([{"time": _when(e["time"]), "alarm": e["alarm"], "kind": e["kind"],
                             "detail": e["detail"]} for e in drift["events"]],
                           ["time", "alarm", "kind", "detail"]))
    return parts


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
