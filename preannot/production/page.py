"""The calibration page: the reliability diagram and the precision-vs-coverage curve with the
chosen threshold, as inline SVG in one offline HTML file (the harvest report's style)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from ..evaluation.report import bars, head, table
from . import drift_page
from .calibration import Calibration

SIZE, PAD = 320, 40


def _xy(x: float, y: float) -> tuple[float, float]:
    return PAD + x * SIZE, PAD + (1 - y) * SIZE


def _frame(title: str, xlabel: str, ylabel: str) -> list[str]:
    x0, y0 = _xy(0, 0)
    _, y1 = _xy(1, 1)
    return [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE + 2 * PAD}" '
             f'height="{SIZE + 2 * PAD + 10}" role="img" aria-label="{escape(title)}">'),
            f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
            f'<rect x="{x0}" y="{y1}" width="{SIZE}" height="{SIZE}" fill="none" stroke="#999"/>',
            f'<text x="{x0}" y="{y0 + 28}" font-size="11">{escape(xlabel)} (0 to 1)</text>',
            f'<text x="4" y="{y1 - 6}" font-size="11">{escape(ylabel)}</text>']


def reliability(probs: Sequence[float], right: Sequence[bool], bins: int = 10) -> str:
    """Observed share of right tasks per bin of calibrated probability (test half)."""
    out = _frame("Reliability (test half)", "calibrated probability", "share right")
    out.append('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4"/>'
               .format(*_xy(0, 0), *_xy(1, 1)))
    binned: dict[int, list[tuple[float, bool]]] = {}
    for p, ok in zip(probs, right):
        binned.setdefault(min(int(p * bins), bins - 1), []).append((p, ok))
    for _, inside in sorted(binned.items()):
        hits = sum(ok for _, ok in inside)
        x, y = _xy(sum(p for p, _ in inside) / len(inside), hits / len(inside))
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3 + min(6, len(inside) ** 0.5):.1f}" '
                   f'fill="#3b7dd8"><title>{len(inside)} tasks, {hits} right</title>'
                   "</circle>")
    out.append("</svg>")
    return "".join(out)


def coverage_curve(calibration: Calibration) -> str:
    """Observed precision and its guaranteed lower bound against the share auto-accepted."""
    out = _frame("Precision vs coverage (test half)", "share auto-accepted", "precision")
    total = max(1, calibration.test_tasks)
    tx, ty = _xy(0, calibration.target_precision)
    out.append(f'<line x1="{tx}" y1="{ty}" x2="{PAD + SIZE}" y2="{ty}" stroke="#c94a4a" '
               f'stroke-dasharray="4"><title>target {calibration.target_precision}</title></line>')
    for step in calibration.steps:
        x, y = _xy(step.tasks / total, 1 - step.errors / step.tasks)
        _, low = _xy(0, 1 - step.upper_error)
        colour = "#3a9d5d" if step.passed else "#c94a4a"
        out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{low:.1f}" '
                   f'stroke="{colour}" stroke-width="1"/><circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" '
                   f'fill="{colour}"><title>p ≥ {step.threshold:.4f}: {step.tasks} tasks, '
                   f'{step.errors} wrong, precision ≥ {1 - step.upper_error:.4f}</title></circle>')
    if chosen := calibration.chosen:
        x, y = _xy(chosen.tasks / total, 1 - chosen.errors / chosen.tasks)
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="none" stroke="#000" '
                   f'stroke-width="2"><title>chosen: p ≥ {chosen.threshold:.4f}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def write(calibration: Calibration, probs: Sequence[float], right: Sequence[bool],
          path: Path, verdict: str) -> Path:
    steps = [{"threshold": s.threshold, "tasks": s.tasks, "errors": s.errors,
              "precision ≥": round(1 - s.upper_error, 4), "passed": s.passed}
             for s in calibration.steps]
    html = "\n".join([
        head(f"preannot calibration: {calibration.model_version}"),
        f"<p><b>{escape(verdict)}</b></p>",
        (f"<p>Target precision {calibration.target_precision} with confidence "
         f"{1 - calibration.delta:.2f}; {calibration.fit_tasks} evaluation tasks fitted the "
         f"calibrator, {calibration.test_tasks} tested the thresholds "
         f"({calibration.test_right} of them right). Calibration {calibration.id}, "
         f"{calibration.created}.</p>"),
        reliability(probs, right), coverage_curve(calibration),
        "<h2>Thresholds tested, highest first</h2>",
        table(steps, ["threshold", "tasks", "errors", "precision ≥", "passed"]),
        "</body></html>"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def interval(title: str, value: float, low: float, high: float, target: float) -> str:
    """A precision with its interval against the target, on a scale zoomed to where they are."""
    start = max(0.0, min(low, target) - 0.02)
    width = 1.0 - start or 1.0

    def x(v: float) -> float:
        return PAD + (v - start) / width * SIZE * 1.5

    return "".join([
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE * 1.5 + 2 * PAD}" height="90" '
         f'role="img" aria-label="{escape(title)}">'),
        f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
        (f'<line x1="{x(low):.1f}" y1="50" x2="{x(high):.1f}" y2="50" stroke="#3b7dd8" '
         'stroke-width="4"/>'),
        f'<circle cx="{x(value):.1f}" cy="50" r="5" fill="#3b7dd8"><title>{value}</title></circle>',
        (f'<line x1="{x(target):.1f}" y1="30" x2="{x(target):.1f}" y2="70" stroke="#c94a4a" '
         f'stroke-dasharray="3"><title>target {target}</title></line>'),
        f'<text x="{PAD}" y="85" font-size="11">{start:.2f}</text>',
        f'<text x="{x(1.0) - 10:.1f}" y="85" font-size="11">1.00</text></svg>'])


def dashboard(figures: dict, path: Path) -> Path:
    """The production review's status page: what happened to the tasks, per label, and the
    precision the audits show."""
    tasks, precision = figures["tasks"], figures["realised_precision"]
    labels = figures["labels"]
    top = max([1, *(n for counts in labels.values() for n in counts.values())])
    rows = [(label, {k: counts.get(k, 0) for k in ("auto", "audit", "route")})
            for label, counts in labels.items()]
    parts = [head("preannot production review"), f"<p><b>{escape(figures['headline'])}</b></p>",
             table([tasks], list(tasks)), table([figures["released"]], ["delivered", "pending"])]
    if precision:
        parts.append(interval(
            f"Realised precision from {precision['audited']} audits "
            f"({precision['confidence']:.0%} interval)", precision["value"], precision["low"],
            precision["high"], figures["target_precision"]))
    else:
        parts.append("<p>No audited task has been reviewed yet.</p>")
    parts += ["<h2>Per label</h2>",
              bars("Tasks per predicted label: released, audited, routed", rows,
                   ["auto", "audit", "route"], scale=top),
              f"<p>Throughput: {figures['throughput_per_hour'] or '–'} tasks an hour.</p>",
              *drift_page.section(figures.get("drift")), "</body></html>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
