"""The harvest report: one self-contained HTML file, plots as hand-written inline SVG.

No JavaScript and nothing fetched from the network (reports are read offline), and no plotting
library, so the light core install can write it.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

W, BAR_H, GAP, LEFT = 640, 14, 6, 170
COLORS = {"precision": "#3b7dd8", "recall": "#e08a2c", "accepted": "#3a9d5d",
          "rejected": "#c94a4a", "misfires": "#c94a4a", "current": "#9a9a9a",
          "candidate": "#3b7dd8", "auto": "#3a9d5d", "audit": "#3b7dd8", "route": "#e08a2c"}


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def bars(title: str, rows: list[tuple[str, dict[str, float | None]]], series: list[str],
         scale: float = 1.0) -> str:
    """Horizontal grouped bars: one group per row, one bar per series, values in [0, scale]."""
    group = len(series) * BAR_H + GAP
    height = 30 + group * len(rows) + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" role="img" '
           f'aria-label="{escape(title)}"><text x="0" y="16" font-weight="bold">{escape(title)}</text>']
    for i, (name, values) in enumerate(rows):
        y = 30 + i * group
        out.append(f'<text x="{LEFT - 6}" y="{y + BAR_H}" text-anchor="end" font-size="12">'
                   f'{escape(name)}</text>')
        for k, key in enumerate(series):
            v = values.get(key)
            width = 0 if v is None or not scale else (W - LEFT - 60) * v / scale
            out.append(f'<rect x="{LEFT}" y="{y + k * BAR_H}" width="{width:.1f}" '
                       f'height="{BAR_H - 2}" fill="{COLORS.get(key, "#888")}"><title>{escape(name)} '
                       f'{key} {fmt(v)}</title></rect><text x="{LEFT + width + 4:.1f}" '
                       f'y="{y + k * BAR_H + BAR_H - 3}" font-size="11">{key} {fmt(v) if scale == 1 else int(v or 0)}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(title: str, edges: list[float], counts: dict[str, list[int]]) -> str:
    """Side-by-side columns per bin for each series (accepted vs rejected confidences)."""
    top = max([1, *(c for series in counts.values() for c in series)])
    n, plot_h, col = len(edges) - 1, 160, (W - 60) / (len(edges) - 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{plot_h + 70}" role="img" '
           f'aria-label="{escape(title)}"><text x="0" y="16" font-weight="bold">{escape(title)}</text>']
    for b in range(n):
        x = 40 + b * col
        for k, (name, series) in enumerate(counts.items()):
            h = plot_h * series[b] / top
            out.append(f'<rect x="{x + k * col / 2:.1f}" y="{30 + plot_h - h:.1f}" '
                       f'width="{col / 2 - 2:.1f}" height="{h:.1f}" fill="{COLORS.get(name, "#888")}">'
                       f'<title>{name} {edges[b]:.1f}-{edges[b + 1]:.1f}: {series[b]}</title></rect>')
        out.append(f'<text x="{x:.1f}" y="{plot_h + 45}" font-size="10">{edges[b]:.1f}</text>')
    legend = " ".join(f'<tspan fill="{COLORS.get(k, "#888")}">■ {k}</tspan>' for k in counts)
    out.append(f'<text x="40" y="{plot_h + 62}" font-size="12">{legend} (region score)</text></svg>')
    return "".join(out)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v: Any) -> str:
    return fmt(v) if isinstance(v, float) else ("–" if v is None else str(v))


def head(title: str) -> str:
    """The page's start, up to its heading: one style for every preannot report."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:"
            "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
            f"td:first-child{{text-align:left}}</style></head><body>\n<h1>{escape(title)}</h1>")


def render(metrics: dict[str, Any], title: str = "preannot harvest", misfiring: int = 15) -> str:
    """The report's HTML for the figures of :func:`preannot.metrics.compute`."""
    labels = metrics["labels"]
    label_rows = [(name, m) for name, m in labels.items()]
    rules = sorted(metrics["rules"], key=lambda r: (-r["misfires"], r["precision"] or 0))[:misfiring]
    rule_rows = [(f"{r['rule_file']}:{r['rule']}", {"misfires": r["misfires"]}) for r in rules]
    top = max([1, *(r["misfires"] for r in rules)])
    hist = metrics["confidence_histogram"]
    agreement = metrics["agreement"]
    parts = [
        head(title),
        "<h2>Tasks</h2>", table([metrics["tasks"]], list(metrics["tasks"])),
        f"<p>{metrics['cancelled_annotations']} cancelled (skipped) annotations; "
        f"{metrics['errors']} unreadable result items; inter-annotator agreement "
        f"({escape(agreement['method'])}) {fmt(agreement['mean'])} over {agreement['tasks']} "
        "tasks annotated more than once.</p>",
        "<h2>Annotators</h2>",
        table([{"annotator": k, **v} for k, v in metrics["annotators"].items()],
               ["annotator", "predicted", "accepted", "edited", "modified", "deleted", "added",
                "precision", "recall", "f1", "acceptance_rate", "edits_per_task"]),
        "<h2>Labels</h2>", bars("Precision and recall per label", label_rows, ["precision", "recall"]),
        table([{"label": k, **v} for k, v in labels.items()],
               ["label", "predicted", "accepted", "edited", "modified", "deleted", "added",
                "precision", "recall", "f1"]),
        "<h2>Confidence</h2>",
        histogram("Scores of accepted vs rejected (modified or deleted) regions", hist["bins"],
                  {"accepted": hist["accepted"], "rejected": hist["rejected"]}),
        "<h2>Rules that misfire most</h2>",
        bars("Misfires (modified + deleted) per rule", rule_rows, ["misfires"], scale=top),
        table(rules, ["rule_file", "rule", "annotator", "predicted", "accepted", "modified",
                       "deleted", "precision"]),
        "</body></html>"]
    return "\n".join(parts)


def write(metrics: dict[str, Any], path: Path, title: str = "preannot harvest") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(metrics, title), encoding="utf-8")
    return path
