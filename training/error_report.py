"""The error analysis of an evaluation as people read it: Markdown tables of causes per label, examples, confusion PNG.

Its input is :meth:`veille.annotation.errors.ErrorReport.to_dict` (also written as
``errors.json``), so the report shows exactly what the JSON holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from veille.annotation.errors import ENTITY_CAUSES, NONE, RELATION_CAUSES

TABLES = (
    ("entities", "false_negatives", "Entities in gold, not predicted exactly (false negatives)", ENTITY_CAUSES),
    ("entities", "false_positives", "Entities predicted, not in gold (false positives)", ENTITY_CAUSES),
    ("relations", "false_negatives", "Relations in gold, not predicted (false negatives)", RELATION_CAUSES),
    ("relations", "false_positives", "Relations predicted, not in gold (false positives)", RELATION_CAUSES),
)
TEXT_CHARS = 200  # an example sentence longer than this is cut in the report (errors.json keeps it whole)


def errors_markdown(errors: dict[str, Any], level: int = 2) -> str:
    """One table per kind and side (labels × causes), each followed by a few example sentences per cause."""
    heading = "#" * level
    parts = [f"{heading} Errors\n\nEach strict error gets one cause; per label, the causes add up to the false negatives and false positives above."]
    for kind, side, title, causes in TABLES:
        found = errors[kind][side]
        parts.append(f"{heading}# {title}\n\n" + (_cause_table(found, causes) if found else "None."))
    return "\n\n".join(parts) + "\n"


def _cause_table(found: dict[str, Any], causes: dict[str, str]) -> str:
    columns = [cause for cause in causes if cause in found]
    labels = sorted({label for cause in columns for label in found[cause]["per_label"]})
    rows = ["| label | " + " | ".join(columns) + " | total |", "|---|" + "---:|" * (len(columns) + 1)]
    for label in labels:
        counts = [found[cause]["per_label"].get(label, 0) for cause in columns]
        rows.append(f"| {label} | " + " | ".join(str(n or "") for n in counts) + f" | {sum(counts)} |")
    totals = [found[cause]["total"] for cause in columns]
    rows.append("| **all** | " + " | ".join(str(n) for n in totals) + f" | {sum(totals)} |")
    examples = [
        f"- **{cause}** ({causes[cause]}): `{e['id']}` {e['detail']} — « {_cut(e['text'])} »" for cause in columns for e in found[cause]["examples"]
    ]
    return "\n".join(rows) + "\n\n" + "\n".join(examples)


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def plot_confusion(errors: dict[str, Any], path: Path, title: str = "") -> None:
    """Entity and relation label confusion matrices side by side (rows gold, columns predicted, ∅ = none)."""
    from .report import pyplot

    plt = pyplot()
    panels = [("entities", "entities (overlapping spans)"), ("relations", "relations (both arguments right)")]
    fig, axes = plt.subplots(1, 2, figsize=(16, 7.5))
    for axis, (kind, name) in zip(axes, panels):
        cells = errors[kind]["confusion"]
        labels = sorted({c["gold"] for c in cells} | {c["predicted"] for c in cells}, key=lambda label: (label == NONE, label))
        index = {label: i for i, label in enumerate(labels)}
        matrix = [[0] * len(labels) for _ in labels]
        for cell in cells:
            matrix[index[cell["gold"]]][index[cell["predicted"]]] = cell["count"]
        axis.imshow(matrix or [[0]], cmap="Blues")
        for row, values in enumerate(matrix):
            for column, count in enumerate(values):
                if count:
                    axis.text(column, row, str(count), ha="center", va="center", fontsize=7)
        axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        axis.set_yticks(range(len(labels)), labels, fontsize=7)
        axis.set(title=name, xlabel="predicted", ylabel="gold")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
