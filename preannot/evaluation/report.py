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


def scatter(title: str, points: list[tuple[str, float | None, float | None]], x_label: str,
            y_label: str, x_max: float | None = None) -> str:
    """Named points, x against y (y in [0, 1]); points missing a coordinate are left out."""
    points = [(n, x, y) for n, x, y in points if x is not None and y is not None]
    size, pad = 300, 40
    top = x_max or max([1e-9, *(x for _, x, _ in points)]) * 1.1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{size + 70}" role="img" '
           f'aria-label="{escape(title)}"><text x="0" y="16" font-weight="bold">{escape(title)}</text>'
           f'<rect x="{pad}" y="30" width="{size}" height="{size}" fill="none" stroke="#999"/>'
           f'<text x="{pad}" y="{size + 50}" font-size="12">{escape(x_label)} (0 to {top:.3g})</text>'
           f'<text x="{pad + size + 8}" y="40" font-size="12">{escape(y_label)} 1.0</text>'
           f'<text x="{pad + size + 8}" y="{size + 30}" font-size="12">0.0</text>']
    for name, x, y in points:
        cx, cy = pad + size * min(1.0, x / top), 30 + size * (1 - max(0.0, min(1.0, y)))
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="#3b7dd8"><title>{escape(name)}: '
                   f'{x:.3g}, {y:.2f}</title></circle><text x="{cx + 7:.1f}" y="{cy + 4:.1f}" '
                   f'font-size="11">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def heatmap(title: str, labels: list[str], counts: list[list[int]], rows: str, cols: str) -> str:
    """A confusion matrix: cell shade by its share of the row, the count written in it."""
    cell, left, top = 44, 110, 110
    n = len(labels)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(left + cell * n + 20, 440)}" '
           f'height="{top + cell * n + 30}" role="img" aria-label="{escape(title)}">'
           f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>'
           f'<text x="0" y="34" font-size="11">rows: {escape(rows)}; columns: {escape(cols)}</text>']
    for j, name in enumerate(labels):
        x = left + j * cell + cell / 2
        out.append(f'<text transform="translate({x:.0f},{top - 6}) rotate(-45)" font-size="11">'
                   f'{escape(name)}</text>')
    for i, name in enumerate(labels):
        y = top + i * cell
        total = sum(counts[i]) or 1
        out.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" text-anchor="end" '
                   f'font-size="11">{escape(name)}</text>')
        for j, count in enumerate(counts[i]):
            share = count / total
            color = "#3a9d5d" if i == j else "#c94a4a"
            out.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                       f'fill="{color}" fill-opacity="{0.08 + 0.9 * share:.2f}"><title>{escape(name)}'
                       f' -> {escape(labels[j])}: {count}</title></rect><text x="'
                       f'{left + j * cell + cell / 2 - 1:.0f}" y="{y + cell / 2 + 4:.0f}" '
                       f'text-anchor="middle" font-size="11">{count}</text>')
    out.append("</svg>")
    return "".join(out)


def _short(name: str) -> str:
    """An annotator's name in a plot: the e-mail's local part."""
    return name.split("@")[0]


def task_links(link: str | None, tasks: list[int], limit: int = 10) -> str:
    """Links to tasks in Label Studio (plain ids without a server address)."""
    shown = ", ".join(f'<a href="{escape(link.format(task=t))}">{t}</a>' if link else str(t)
                      for t in tasks[:limit])
    return shown + (f" and {len(tasks) - limit} more" if len(tasks) > limit else "")


def quality_sections(metrics: dict[str, Any]) -> list[str]:
    """Human annotators' reliability, label confusion, the tasks that need a look, the spec."""
    parts: list[str] = []
    quality, link = metrics.get("quality"), metrics.get("link")
    if quality and quality["annotators"]:
        people = quality["annotators"]
        rows = []
        for name, q in people.items():
            gt, est = q["ground_truth"] or {}, q["estimated"] or {}
            rows.append({"annotator": name, "accuracy": q["accuracy"],
                         "from": q["accuracy_source"], "gt precision": gt.get("precision"),
                         "gt recall": gt.get("recall"), "gt f1": gt.get("f1"),
                         "estimated accuracy": est.get("accuracy"),
                         "lead time (s)": q["lead_time_mean"],
                         "kept predictions": q["acceptance_rate"],
                         "careless?": "yes" if q["careless"] else ""})
        parts += [
            "<h2>Human annotators</h2>",
            f"<p>{escape(quality['method'])}; {quality['locations']} locations annotated by "
            "several people. Careless: keeps most predictions as they were yet is much less "
            "accurate than the best.</p>",
            table(rows, list(rows[0])),
            bars("Accuracy per annotator", [(_short(n), {"accuracy": q["accuracy"]})
                                            for n, q in people.items()], ["accuracy"]),
            scatter("Speed against accuracy", [(_short(n), q["lead_time_mean"], q["accuracy"])
                                               for n, q in people.items()],
                    "mean lead time (s)", "accuracy"),
            scatter("Predictions kept as they were against accuracy",
                    [(_short(n), q["acceptance_rate"], q["accuracy"]) for n, q in people.items()],
                    "share of predicted regions kept", "accuracy", x_max=1.0)]
        per_label = [{"annotator": n, "label": lb, "ground truth f1": (
            ((q["ground_truth"] or {}).get("labels") or {}).get(lb) or {}).get("f1"),
            "estimated accuracy": ((q["estimated"] or {}).get("labels") or {}).get(lb)}
            for n, q in people.items()
            for lb in sorted({*((q["ground_truth"] or {}).get("labels") or {}),
                              *((q["estimated"] or {}).get("labels") or {})})]
        if per_label:
            parts.append(table(per_label, ["annotator", "label", "ground truth f1",
                                           "estimated accuracy"]))
        if quality["krippendorff_alpha"]:
            parts += ["<p>Krippendorff's alpha per label (nominal, over locations):</p>",
                      table([{"label": k, "alpha": v} for k, v in
                             quality["krippendorff_alpha"].items()], ["label", "alpha"])]
    confusion = metrics.get("confusion")
    human = (quality or {}).get("human_confusion")
    if (confusion and confusion["labels"]) or (human and human["labels"]):
        parts.append("<h2>Label confusion</h2>")
        if confusion and confusion["labels"]:
            parts.append(heatmap("Predicted label against the human's", confusion["labels"],
                                 confusion["counts"], "predicted", "human final"))
        if human and human["labels"]:
            parts.append(heatmap("Human against human (same location)", human["labels"],
                                 human["counts"], "one annotator", "another"))
    lists = []
    adjudicate = (metrics.get("adjudication") or {}).get("tasks") or []
    if adjudicate:
        body = "".join(
            f"<tr><td>{task_links(link, [t['task']])}</td><td>{t['disagreement']:.2f}</td>"
            f"<td style='text-align:left'>{escape(', '.join(map(_short, t['annotators'])))}</td>"
            "</tr>" for t in adjudicate[:50])
        lists.append(f"<h3>Needs adjudication (disagreement at least "
                     f"{metrics['adjudication']['threshold']}; {len(adjudicate)} tasks, the "
                     "Data Manager tab of that name holds them all)</h3><table><tr><th>task</th>"
                     f"<th>disagreement</th><th>annotators</th></tr>{body}</table>")
    duplicates = metrics.get("duplicates") or {}
    if duplicates.get("groups"):
        groups = duplicates["groups"]
        lists.append(f"<h3>Near-duplicates labeled more than once ({len(groups)} groups, "
                     f"{sum(len(g) - 1 for g in groups)} labels paid twice; cosine at least "
                     f"{duplicates['threshold']})</h3><ul>" + "".join(
                         f"<li>{task_links(link, g)}</li>" for g in groups[:50]) + "</ul>")
    if metrics.get("churn"):
        lists.append("<h3>Changed back and forth across pulls</h3><ul>" + "".join(
            f"<li>task {task_links(link, [c['task']])}: annotation {c['annotation']} changed "
            f"{c['changes']} times{' and came back to an earlier answer' if c['reverted'] else ''}"
            "</li>" for c in metrics["churn"][:50]) + "</ul>")
    if metrics.get("repeated_corrections"):
        lists.append("<h3>Corrections that repeat</h3><ul>" + "".join(
            f"<li>{escape(r['annotator'])} {escape(r['rule'] or '')} {escape(r['label'])}: "
            f"{escape(r['correction'])} {r['count']} times: {task_links(link, r['tasks'])}</li>"
            for r in metrics["repeated_corrections"][:30]) + "</ul>")
    reannotate = (metrics.get("reannotate") or {}).get("tasks") or []
    if reannotate:
        lists.append("<h3>Needs re-annotation (labels the config no longer has)</h3><p>"
                     + task_links(link, [t["task"] for t in reannotate], 50) + "</p>")
    if lists:
        parts += ["<h2>Tasks that need a look</h2>", *lists]
    spec = metrics.get("spec")
    if spec:
        change = (f"; changed since the last pull (was {escape(spec['previous'])}): added "
                  f"{escape(', '.join(spec['added']) or 'none')}, removed "
                  f"{escape(', '.join(spec['removed']) or 'none')}" if spec.get("changed") else "")
        parts.append(f"<h2>Label spec</h2><p>Labeling config version "
                     f"{escape(spec['version'])}{change}.</p>")
    return parts


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
        *quality_sections(metrics),
        "</body></html>"]
    return "\n".join(parts)


def write(metrics: dict[str, Any], path: Path, title: str = "preannot harvest") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(metrics, title), encoding="utf-8")
    return path
