"""Simulated active learning: how many annotated sentences each suggestion strategy needs.

    python -m veille.serving.learning_curve --config quick --output runs/learning-curve

The training split plays both the unlabelled pool and the annotator: a run starts from
``steps[0]`` random sentences, trains the preset on them, scores dev and test, then lets its
strategy choose the next batch from the rest of the split (exactly as ``veille annotate
suggest`` would, same ranking code), « annotates » it with the split's gold, and trains
again from the base model, until the last step. Each (strategy, seed) pair is one run.

It writes ``results.json`` (one record per trained step, rewritten after each, so a killed
run continues where it stopped with the same command), ``learning_curve.png`` (F1 against
labelled sentences, entities and relations, test solid and dev dashed, mean over seeds) and
``learning_curve.md`` (the table, and the number of sentences each strategy needs to reach
random selection's test F1 at the last step). Models are deleted once they have chosen
their batch: the run keeps only scores and sentence ids.

This benchmark sits in the serving stage beside ``suggest`` and drives training: a script
at the end of the pipeline, which nothing imports.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from veille.annotation.atomic import atomic_open
from veille.annotation.corpus import read_corpus, write_corpus
from veille.annotation.document import Example

from .suggest import DEFAULT_PER_DOCUMENT, STRATEGIES, Candidate, SuggestOptions, score_sentences, select, words

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@dataclass(frozen=True)
class Simulation:
    """What one benchmark compares: strategies × seeds, each trained at every step."""

    preset: str
    overrides: dict[str, Any]
    train: list[Example]
    dev: Path
    test: Path
    steps: list[int]
    per_document: int
    output: Path


def run_curve(simulation: Simulation, strategy: str, seed: int, records: list[dict[str, Any]]) -> None:
    """Train every step of one (strategy, seed) run not yet in ``records``, appending and saving each."""
    done = [r for r in records if (r["strategy"], r["seed"]) == (strategy, seed)]
    by_id = {example.id: example for example in simulation.train}
    if done:
        labelled = done[-1]["labelled"] + done[-1]["next"]
    else:
        labelled = [e.id for e in random.Random(seed).sample(simulation.train, simulation.steps[0])]
    for index, size in enumerate(simulation.steps[len(done) :], start=len(done)):
        from veille.models.predictor import Predictor

        folder = simulation.output / f"{strategy}-seed{seed}-{size}"
        predictor = Predictor.load(_train(simulation, [by_id[i] for i in labelled], seed, folder), device="auto")
        record: dict[str, Any] = {"strategy": strategy, "seed": seed, "sentences": len(labelled), **_scores(predictor, simulation), "labelled": labelled, "next": []}
        if index + 1 < len(simulation.steps):
            taken = set(labelled)
            pool = [e for e in simulation.train if e.id not in taken]
            wanted = simulation.steps[index + 1] - len(labelled)
            options = SuggestOptions(n=wanted, strategy=strategy, per_document=simulation.per_document, seed=seed * 1000 + index)
            chosen = select(_candidates(predictor, pool, strategy, options), options, [by_id[i].text for i in labelled])
            record["next"] = [c.example.id for c in chosen]
        shutil.rmtree(folder)
        records.append(record)
        _save(simulation.output / "results.json", records)
        labelled = labelled + record["next"]


def _train(simulation: Simulation, labelled: list[Example], seed: int, folder: Path) -> Path:
    """The preset trained from its base model on the labelled sentences; its model directory."""
    from veille.training.config import load_config
    from veille.training.trainer import train

    folder.mkdir(parents=True, exist_ok=True)
    write_corpus(folder / "labelled.jsonl", labelled)
    values = {**simulation.overrides, "train_files": [str(folder / "labelled.jsonl")], "dev_files": [str(simulation.dev)], "output": str(folder / "model"), "seed": seed}
    train(load_config(simulation.preset, values), overwrite=True, progress=False)
    return folder / "model"


def _scores(predictor, simulation: Simulation) -> dict[str, dict[str, float]]:
    """Entity and strict relation micro F1 on dev and test, with the model's tuned thresholds."""
    from veille.training.evaluate import evaluate

    scores = {}
    for split, path in (("dev", simulation.dev), ("test", simulation.test)):
        result = evaluate(predictor, read_corpus(path, predictor.schema))
        scores[split] = {"entities": round(result.entities.micro.f1, 4), "relations": round(result.relations.micro.f1, 4)}
    return scores


def _candidates(predictor, pool: list[Example], strategy: str, options: SuggestOptions) -> list[Candidate]:
    """The pool as ranking candidates, their gold hidden from the model; ``random`` needs no prediction."""
    if strategy == "random":
        return [Candidate(e, 1.0, words(e.text)) for e in pool]
    return list(score_sentences(predictor, [Example(e.id, e.text, meta=dict(e.meta)) for e in pool], options))


def _save(path: Path, records: list[dict[str, Any]]) -> None:
    with atomic_open(path) as handle:
        json.dump(records, handle, ensure_ascii=False, indent=1)


def summary(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, dict[str, float]]]:
    """Mean scores over seeds per (strategy, labelled sentences)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["strategy"], record["sentences"]), []).append(record)
    return {
        key: {split: {kind: sum(r[split][kind] for r in found) / len(found) for kind in ("entities", "relations")} for split in ("dev", "test")}
        for key, found in sorted(groups.items())
    }


def sentences_to_reach(curve: list[tuple[int, float]], target: float) -> float | None:
    """Labelled sentences at which a curve (sorted by size) first reaches ``target``, linear between steps; None if never."""
    if curve and curve[0][1] >= target:
        return float(curve[0][0])
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if y1 >= target:
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0)
    return None


def markdown(records: list[dict[str, Any]]) -> str:
    """The README table: mean F1 per strategy and step, then what uncertainty saves over random."""
    means = summary(records)
    seeds = sorted({r["seed"] for r in records})
    lines = [
        f"Mean over seeds {', '.join(map(str, seeds))}; micro F1, relations strict end-to-end.",
        "",
        "| strategy | sentences | dev entities | dev relations | test entities | test relations |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (strategy, size), scores in means.items():
        lines.append(f"| {strategy} | {size} | {scores['dev']['entities']:.3f} | {scores['dev']['relations']:.3f} | {scores['test']['entities']:.3f} | {scores['test']['relations']:.3f} |")
    strategies = sorted({s for s, _ in means})
    if "random" in strategies:
        last = max(size for s, size in means if s == "random")
        lines += ["", f"Sentences needed to reach random selection's test F1 at {last} sentences:", ""]
        lines += ["| strategy | entities | relations |", "|---|---:|---:|"]
        for strategy in strategies:
            cells = []
            for kind in ("entities", "relations"):
                curve = [(size, scores["test"][kind]) for (s, size), scores in means.items() if s == strategy]
                reached = sentences_to_reach(curve, means[("random", last)]["test"][kind])
                cells.append("not reached" if reached is None else f"{reached:.0f}")
            lines.append(f"| {strategy} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def plot(records: list[dict[str, Any]], path: Path) -> None:
    """F1 against labelled sentences, one panel per kind, test solid and dev dashed."""
    from veille.training.report import pyplot

    plt = pyplot()
    means = summary(records)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, kind in zip(axes, ("entities", "relations")):
        for number, strategy in enumerate(sorted({s for s, _ in means})):
            sizes = sorted(size for s, size in means if s == strategy)
            for split, style in (("test", "-"), ("dev", "--")):
                values = [means[(strategy, size)][split][kind] for size in sizes]
                axis.plot(sizes, values, style, marker="o", color=f"C{number}", label=f"{strategy} ({split})")
        axis.set(title=f"{kind} micro F1" + (" (strict)" if kind == "relations" else ""), xlabel="labelled sentences", ylim=(0, 1))
        axis.set_xticks(sorted({size for _, size in means}))
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@app.command()
def main(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for results.json, learning_curve.png and learning_curve.md.")] = Path("runs/learning-curve"),
    config: Annotated[str, typer.Option("--config", "-c", help="Training preset or TOML file.")] = "quick",
    train: Annotated[Optional[Path], typer.Option("--train", help="Gold JSONL: the pool and its annotator (default: the shipped train split).")] = None,
    dev: Annotated[Optional[Path], typer.Option("--dev", help="Gold JSONL for epoch selection and scores (default: the shipped dev split).")] = None,
    test: Annotated[Optional[Path], typer.Option("--test", help="Gold JSONL scored at every step (default: the shipped test split).")] = None,
    steps: Annotated[list[int], typer.Option("--step", help="Labelled sentences at each step (repeat; the first is random).")] = [100, 200, 400, 800],  # noqa: B006
    seeds: Annotated[list[int], typer.Option("--seed", help="One run per seed and strategy (repeat).")] = [13, 14],  # noqa: B006
    strategies: Annotated[list[str], typer.Option("--strategy", help=f"Strategies to compare (repeat): {', '.join(STRATEGIES)}.")] = ["random", "uncertainty"],  # noqa: B006
    per_document: Annotated[int, typer.Option("--per-document", min=1, help="At most this many sentences of one document per batch.")] = DEFAULT_PER_DOCUMENT,
    settings_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Any training config key (--set epochs=1).")] = None,
) -> None:
    """Train each strategy's learning curve (resumable) and write the table and the PNG."""
    from veille.training.config import corpus_file, parse_settings

    if sorted(steps) != steps or len(set(steps)) != len(steps):
        raise typer.BadParameter("steps must increase", param_hint="--step")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise typer.BadParameter(f"unknown strategy {unknown[0]!r} (choose from {', '.join(STRATEGIES)})", param_hint="--strategy")
    pool = read_corpus(train or corpus_file("train"))
    if steps[-1] > len(pool):
        raise typer.BadParameter(f"the last step ({steps[-1]}) exceeds the {len(pool)} training sentences", param_hint="--step")
    simulation = Simulation(
        config, parse_settings(settings_ or []), pool, dev or Path(corpus_file("dev")), test or Path(corpus_file("test")), steps, per_document, output
    )
    results = output / "results.json"
    records = json.loads(results.read_text(encoding="utf-8")) if results.is_file() else []
    for strategy in strategies:
        for seed in seeds:
            run_curve(simulation, strategy, seed, records)
    plot(records, output / "learning_curve.png")
    with atomic_open(output / "learning_curve.md") as handle:
        handle.write(markdown(records))
    print(markdown(records))


if __name__ == "__main__":
    app()
