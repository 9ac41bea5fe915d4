"""The Label Studio labelling config, generated from the schema so the two never drift apart."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from ..schema import Schema
from .results import FROM_NAME, TO_NAME

# Fallback colours (Sasha Trubetskoy's distinct colours) for labels whose colour is already taken.
PALETTE = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
    "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000",
)


def labeling_config(schema: Schema) -> str:
    """The ``<View>`` XML: entity ``Labels`` (colour, French description as hover hint),
    the relation labels, and the sentence with ``granularity="symbol"`` so that spans are
    character-exact instead of snapping to words (« l'OpenAI » must yield « OpenAI »)."""
    colors = distinct_colors([e.color for e in schema.entities])
    labels = "\n".join(
        f"    <Label value={quoteattr(e.label)} background={quoteattr(color)} hint={quoteattr(e.description)}/>"
        for e, color in zip(schema.entities, colors)
    )
    relations = "\n".join(
        f"    <Relation value={quoteattr(r.label)} hint={quoteattr(_relation_hint(r.head, r.tail, r.description))}/>"
        for r in schema.relations
    )
    return (
        "<View>\n"
        f"  <Header value=\"$doc\"/>\n"
        f"  <Relations>\n{relations}\n  </Relations>\n"
        f"  <Labels name=\"{FROM_NAME}\" toName=\"{TO_NAME}\">\n{labels}\n  </Labels>\n"
        f"  <Text name=\"{TO_NAME}\" value=\"${TO_NAME}\" granularity=\"symbol\"/>\n"
        "</View>\n"
    )


def _relation_hint(head: tuple[str, ...], tail: tuple[str, ...], description: str) -> str:
    return f"{'|'.join(head)} → {'|'.join(tail)} : {description}"


def distinct_colors(wanted: list[str]) -> list[str]:
    """Keep each label's own colour unless an earlier label has it; then take an unused one."""
    used: set[str] = set()
    out = []
    for color in wanted:
        if color.lower() in used:
            color = next((c for c in PALETTE if c not in used), color)
        used.add(color.lower())
        out.append(color)
    return out
