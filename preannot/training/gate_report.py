"""The gate's report: why a version was promoted or refused, old vs new per label, one HTML
file beside the version's card (same look as the harvest report: inline SVG, no scripts)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from ..evaluation.report import bars, head, table
from .gate import GateVerdict, GatePolicy
from .registry import Version

COLUMNS = ["label", "support", "current precision", "current recall", "current f1",
           "candidate precision", "candidate recall", "candidate f1", "change in f1"]


def rows(candidate: dict[str, Any], baseline: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per label (and ``all``): current and candidate precision, recall and F1."""
    labels = sorted(set(candidate["labels"]) | set((baseline or {}).get("labels", {})))
    out = []
    for label, new, old in [("all", candidate["overall"], (baseline or {}).get("overall")),
                            *((lb, candidate["labels"].get(lb), (baseline or {}).get("labels", {}).get(lb))
                              for lb in labels)]:
        new = new or {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        row = {"label": label, "support": new.get("support") or (old or {}).get("support", 0)}
        for prefix, m in (("current", old), ("candidate", new)):
            for key in ("precision", "recall", "f1"):
                row[f"{prefix} {key}"] = None if m is None else m[key]
        row["change in f1"] = None if old is None else round(new["f1"] - old["f1"], 4)
        out.append(row)
    return out


def pipeline_rows(evaluations: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per label (and ``all``), an F1 column per pipeline (each source and the fusion)."""
    labels = sorted({lb for e in evaluations.values() for lb in e["labels"]})
    out = []
    for label in ["all", *labels]:
        row: dict[str, Any] = {"label": label}
        for name, e in evaluations.items():
            m = e["overall"] if label == "all" else e["labels"].get(label)
            row["support"] = max(row.get("support", 0), (m or {}).get("support", 0))
            for key in ("precision", "recall", "f1"):
                row[f"{name} {key}"] = None if m is None else m[key]
        out.append(row)
    return out


def pipeline_section(p: Any) -> list[str]:
    """The fused pipeline's gate: every source alone and the fusion, per label."""
    names = list(p.evaluations)
    table_rows = pipeline_rows(p.evaluations)
    chart = [(r["label"], {n: r[f"{n} f1"] for n in names}) for r in table_rows]
    columns = ["label", "support",
               *[f"{n} {k}" for n in names for k in ("precision", "recall", "f1")]]
    used = "the fusion" if p.use == p.fusion else f"{p.use} alone (the fusion lost)"
    return [f"<h2>Pipeline {escape(p.fusion)}: {escape(used)} goes to Label Studio</h2>",
            "<ul>" + "".join(f"<li>{escape(r)}</li>" for r in p.reasons) + "</ul>",
            f"<p>The fusion's figures are out-of-fold: its combiner fitted without the task's "
            f"fold; threshold {p.combiner.get('threshold')}.</p>",
            bars(f"F1 per label: each source and {p.fusion}", chart, names),
            table(table_rows, columns)]


def write_gate(version: Version, current: Version | None, candidate: dict[str, Any],
               baseline: dict[str, Any] | None, decision: GateVerdict, policy: GatePolicy,
               pipelines: list[Any] = (), split: dict[str, dict[str, int]] | None = None) -> Path:
    verdict = "promoted" if decision.promote else "refused"
    title = f"{version.version}: {verdict}"
    compared = (f"against the current version {current.version}" if current
                else "with no current version to beat")
    table_rows = rows(candidate, baseline)
    chart = [(r["label"], {"current": r["current f1"], "candidate": r["candidate f1"]})
             for r in table_rows]
    parts = [
        head(f"preannot gate: {title}"),
        f"<p>Evaluated on {candidate['tasks']} held-out human-reviewed tasks, {escape(compared)}. "
        f"Policy: {escape(policy.metric)} must improve by at least {policy.margin}; no label "
        f"with {policy.min_label_support}+ human regions may lose more than "
        f"{policy.label_tolerance} F1.</p>",
        "<ul>" + "".join(f"<li>{escape(r)}</li>" for r in decision.reasons) + "</ul>",
        bars("F1 per label: current vs candidate", chart, ["current", "candidate"]),
        table(table_rows, COLUMNS),
        f"<p>Trained on {version.card['harvest']['train']} tasks "
        f"(parent: {escape(str(version.card.get('parent')))}).</p>",
    ]
    if split:
        parts.append("<p>Split: " + escape(", ".join(
            f"{side} {n['tasks']} tasks in {n['groups']} groups" for side, n in split.items()))
            + " (a group never straddles two sides).</p>")
    for p in pipelines:
        parts.extend(pipeline_section(p))
    if candidate["failed"]:
        parts.append(f"<p>{len(candidate['failed'])} evaluation tasks failed: "
                     + escape("; ".join(candidate["failed"][:10])) + "</p>")
    parts.append("</body></html>")
    path = version.folder / "gate.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
