"""What people look at after training or evaluation: PNG charts, a Markdown report, a console table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .error_report import errors_markdown

SECTIONS = (
    ("entities", "Entities"),
    ("relations", "Relations, strict end-to-end"),
    ("relations_gold_entities", "Relations, gold entities given"),
)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Training loss and dev F1 per epoch."""
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o")
    left.set(title="training loss", xlabel="epoch")
    right.plot(epochs, [h["dev_entity_f1"] for h in history], marker="o", label="entities")
    right.plot(epochs, [h["dev_relation_f1"] for h in history], marker="o", label="relations (strict)")
    right.set(title="dev micro F1", xlabel="epoch", ylim=(0, 1))
    right.legend()
    for axis in (left, right):  # epochs are whole numbers: no « 2.5 » tick
        axis.set_xticks(epochs)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_per_label(metrics: dict[str, Any], path: Path, title: str = "") -> None:
    """One horizontal bar chart of per-label F1 for each scored section."""
    plt = pyplot()
    present = [(key, name) for key, name in SECTIONS if key in metrics]
    fig, axes = plt.subplots(1, len(present), figsize=(5 * len(present), 5), squeeze=False)
    for axis, (key, name) in zip(axes[0], present):
        per_label = metrics[key]["per_label"]
        labels = list(per_label)
        bars = axis.barh(labels, [per_label[label]["f1"] for label in labels])
        axis.bar_label(bars, fmt="%.2f", padding=2)  # the value on each bar, not only its length
        axis.set(title=name, xlim=(0, 1.1), xlabel="F1")
        axis.invert_yaxis()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown_tables(metrics: dict[str, Any], level: int = 3) -> str:
    """Per-label P/R/F1 tables with micro and macro rows, one per section, under headings of ``level``."""
    parts = []
    for key, name in SECTIONS:
        if key not in metrics:
            continue
        section = metrics[key]
        rows = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        for label, s in section["per_label"].items():
            rows.append(f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['support']} |")
        micro, macro = section["micro"], section["macro"]
        rows.append(f"| **micro** | {micro['precision']:.3f} | {micro['recall']:.3f} | **{micro['f1']:.3f}** | {micro['support']} |")
        rows.append(f"| macro | {macro['precision']:.3f} | {macro['recall']:.3f} | {macro['f1']:.3f} | |")
        parts.append(f"{'#' * level} {name}\n\n" + "\n".join(rows))
    return "\n\n".join(parts) + "\n"


@dataclass(frozen=True)
class ScoredSplit:
    """One evaluated data file, as the report shows it: its metrics, its errors and its charts (paths relative to the report)."""

    data: str
    metrics: dict[str, Any]
    errors: dict[str, Any]
    charts: list[str]


def evaluation_report(model_dir: str, splits: list[ScoredSplit]) -> str:
    """report.md: how scoring works, a summary when there are several data files, then one section per file."""
    parts = [
        f"# Evaluation of `{model_dir}`\n\n"
        "Spans must match exactly (a partial overlap is one false positive and one false negative); "
        "relations count only with both argument spans, labels and direction right (COMPETES_WITH in either direction).\n"
    ]
    if len(splits) > 1:
        rows = ["| data | sentences | entities F1 | relations strict F1 | relations, gold entities F1 |", "|---|---:|---:|---:|---:|"]
        for split in splits:
            m = split.metrics
            rows.append(f"| `{split.data}` | {m['sentences']} | {m['entities']['micro']['f1']:.3f} | {m['relations']['micro']['f1']:.3f} | {m['relations_gold_entities']['micro']['f1']:.3f} |")
        parts.append("\n".join(rows) + "\n")
    for split in splits:
        images = "\n".join(f"![{Path(c).stem}]({c})" for c in split.charts)
        parts.append(
            f"## `{split.data}` ({split.metrics['sentences']} sentences)\n\n{markdown_tables(split.metrics)}\n"
            f"{errors_markdown(split.errors, level=3)}\n{images}\n"
        )
    return "\n".join(parts)


def console_table(metrics: dict[str, Any], title: str = ""):
    """A rich table: per section its micro scores (macro F1 beside them), then one row per label."""
    from rich.table import Table

    table = Table(title=f"{title} ({metrics['sentences']} sentences)" if title else f"{metrics['sentences']} sentences")
    for column in ("", "P", "R", "F1", "support", "macro F1"):
        table.add_column(column, justify="right" if column else "left")
    for key, name in SECTIONS:
        s = metrics[key]
        table.add_row(name, *_scores(s["micro"]), f"{s['macro']['f1']:.3f}", style="bold")
        for label, counts in s["per_label"].items():
            table.add_row(f"  {label}", *_scores(counts), "")
        table.rows[-1].end_section = True
    return table


def _scores(counts: dict[str, Any]) -> list[str]:
    return [f"{counts['precision']:.3f}", f"{counts['recall']:.3f}", f"{counts['f1']:.3f}", str(counts["support"])]
