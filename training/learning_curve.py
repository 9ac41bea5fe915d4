"""Simulated active learning: does ranking by uncertainty save annotation over a random pick?

    python -m veille.training.learning_curve [--out runs/learning-curve] [--seeds 13 14]
        [--steps 100 200 400 800] [--between 560] [--strategies random uncertainty] [--preset quick]

The train split plays both the unlabelled pool and the annotator. For each seed, ``steps[0]``
random sentences are labelled and the preset is trained on them (one training, the shared
start of every strategy of that seed); that model's dev and test F1 are scored, then each
strategy chooses the next batch from the rest of the split with the ranking ``veille
annotate suggest`` uses (:mod:`veille.models.active_learning`), its gold « annotates » it,
and the preset is trained again from the base model on all labelled sentences, up to the
last step. Dev and test are never in the pool: they are other files, and a train file
sharing an id or a text with them is refused.

Each training is a step folder ``<out>/seed<S>/<strategy>-<size>/`` (``start-<size>`` for
the shared start) whose ``results.json`` holds its scores, its labelled ids and the batch
each strategy chose next; the model is deleted once it has chosen, so a step costs a few
kilobytes, and a rerun of the same command skips every step that has its ``results.json``
(kill it at any time; ``--report-only`` writes the outputs from the steps finished so far,
training nothing). The run then writes ``<out>/results.json`` (every step),
``learning_curve.png`` (F1 against labelled sentences, entities and relations, mean over
seeds, test solid and dev dashed) and ``learning_curve.md`` (the table, and the number of
sentences uncertainty needs to reach random selection's test F1 at the last step, by
linear interpolation on the mean test curves of the seeds that finished every step).

``--between N`` adds trainings inside the schedule without changing it: at ``N`` (between
steps ``a`` and ``b``) each strategy labels the first ``N - a`` sentences of the batch it
chose at ``a``. Every ranking is greedy in a fixed order (margins, or a seeded shuffle),
so these are exactly the sentences a step at ``N`` would have chosen; the points join the
curves (and the interpolation of the bar) but choose nothing, and the later steps stay
those of the plain schedule.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from veille.annotation.atomic import atomic_write_text
from veille.annotation.corpus import CorpusError, read_corpus, write_corpus
from veille.annotation.document import Example
from veille.models.active_learning import DEFAULT_PER_DOCUMENT, STRATEGIES, Selection, score_sentences, select, unscored

from .config import ConfigError, corpus_file, load_config, parse_settings

START = "start"  # the step folder of a seed's shared first training
KINDS = ("entities", "relations")
SPLITS = ("dev", "test")


@dataclass(frozen=True)
class Simulation:
    """What one benchmark compares: strategies × seeds, each trained at every step."""

    preset: str
    overrides: dict[str, Any]
    pool: list[Example]  # the train split: unlabelled pool and annotator
    dev: Path
    test: Path
    steps: list[int]
    strategies: list[str]
    per_document: int
    out: Path
    between: tuple[int, ...] = ()


def step_dir(simulation: Simulation, seed: int, strategy: str, index: int) -> Path:
    """Where one training's results live; the first step is shared by every strategy of a seed."""
    return size_dir(simulation, seed, START if index == 0 else strategy, simulation.steps[index])


def size_dir(simulation: Simulation, seed: int, name: str, size: int) -> Path:
    """The folder of the training of ``name`` (a strategy, or the shared start) at ``size`` sentences: a step or a ``--between`` point."""
    return simulation.out / f"seed{seed}" / f"{name}-{size}"


def plan(simulation: Simulation, seeds: list[int]) -> list[tuple[int, str, int]]:
    """Every (seed, strategy, step index) to train, in order: a seed's start before its strategies' later steps."""
    return [(seed, strategy, index) for seed in seeds for index in range(len(simulation.steps)) for strategy in (simulation.strategies[:1] if index == 0 else simulation.strategies)]


def labelled_at(simulation: Simulation, seed: int, strategy: str, index: int) -> list[str]:
    """The ids labelled at a step: the seeded start, plus the batch each earlier step chose for this strategy."""
    labelled = [e.id for e in random.Random(seed).sample(simulation.pool, simulation.steps[0])]
    for earlier in range(index):
        record = read_step(step_dir(simulation, seed, strategy, earlier))
        if record is None or strategy not in record["next"]:
            raise RuntimeError(f"step {simulation.steps[earlier]} of {strategy}, seed {seed}, has not chosen its batch yet")
        labelled += record["next"][strategy]
    return labelled


def labelled_between(simulation: Simulation, seed: int, strategy: str, size: int) -> list[str]:
    """The ids labelled at a ``--between`` size: the step before it, plus the head of the batch that step chose."""
    index = max(i for i, step in enumerate(simulation.steps) if step < size)
    labelled = labelled_at(simulation, seed, strategy, index + 1)  # the step's labelled ids and its batch (refused if not chosen yet)
    return labelled[:size]


def read_step(folder: Path) -> dict[str, Any] | None:
    path = folder / "results.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def is_done(simulation: Simulation, folder: Path, index: int, strategies: list[str]) -> bool:
    """A step is done when it has its scores and, unless it is the last, the next batch of each strategy it serves."""
    record = read_step(folder)
    return record is not None and (index + 1 == len(simulation.steps) or all(s in record["next"] for s in strategies))


def run_step(simulation: Simulation, seed: int, strategies: list[str], index: int | None, labelled: list[str], folder: Path) -> dict[str, Any]:
    """Train on ``labelled``, score dev and test, let each strategy choose its next batch; write the step's results.json.

    ``index`` None: a ``--between`` point, which chooses nothing.
    """
    from veille.models.predictor import Predictor

    from .evaluate import evaluate
    from .trainer import train

    by_id = {example.id: example for example in simulation.pool}
    folder.mkdir(parents=True, exist_ok=True)
    write_corpus(folder / "labelled.jsonl", [by_id[i] for i in labelled])
    values = {**simulation.overrides, "train_files": [str(folder / "labelled.jsonl")], "dev_files": [str(simulation.dev)], "output": str(folder / "model"), "seed": seed}
    config = load_config(simulation.preset, values)
    result = train(config, overwrite=True, progress=False)
    predictor = Predictor.load(result.output, device=config.device)
    test = evaluate(predictor, read_corpus(simulation.test, predictor.schema))
    record: dict[str, Any] = {
        "seed": seed,
        "sentences": len(labelled),
        "dev": {"entities": result.best["entities"]["micro"]["f1"], "relations": result.best["relations"]["micro"]["f1"]},  # dev as training scored the kept epoch
        "test": {"entities": round(test.entities.micro.f1, 4), "relations": round(test.relations.micro.f1, 4)},
        "best_epoch": result.best_epoch,
        "train_time_s": round(result.train_time_s, 1),
        "labelled": labelled,
        "next": {},
    }
    if index is not None and index + 1 < len(simulation.steps):
        taken = set(labelled)
        rest = [e for e in simulation.pool if e.id not in taken]
        wanted = simulation.steps[index + 1] - len(labelled)
        for strategy in strategies:
            options = Selection(n=wanted, strategy=strategy, per_document=simulation.per_document, seed=seed * 1000 + index)
            candidates = unscored(rest) if strategy == "random" else list(score_sentences(predictor, rest))
            record["next"][strategy] = [c.example.id for c in select(candidates, options, [by_id[i].text for i in labelled])]
    atomic_write_text(folder / "results.json", json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    shutil.rmtree(folder / "model")
    (folder / "labelled.jsonl").unlink()
    return record


def run(simulation: Simulation, seeds: list[int]) -> None:
    """Train every step not yet done, then every ``--between`` point not yet done; a progress bar over the trainings."""
    todo = plan(simulation, seeds)
    extra = [(seed, strategy, size) for seed in seeds for size in simulation.between for strategy in simulation.strategies]
    with tqdm(total=len(todo) + len(extra), desc="learning curve", unit="training") as bar:
        for seed, strategy, index in todo:
            served = simulation.strategies if index == 0 else [strategy]
            folder = step_dir(simulation, seed, strategy, index)
            bar.set_postfix_str(f"seed {seed}, {folder.name}")
            if not is_done(simulation, folder, index, served):
                _report_step(bar, run_step(simulation, seed, served, index, labelled_at(simulation, seed, strategy, index), folder), folder)
            bar.update()
        for seed, strategy, size in extra:
            folder = size_dir(simulation, seed, strategy, size)
            bar.set_postfix_str(f"seed {seed}, {folder.name}")
            if read_step(folder) is None:
                _report_step(bar, run_step(simulation, seed, [strategy], None, labelled_between(simulation, seed, strategy, size), folder), folder)
            bar.update()


def _report_step(bar: tqdm, record: dict[str, Any], folder: Path) -> None:
    bar.write(f"seed {record['seed']} {folder.name}: test entities F1 {record['test']['entities']:.3f}, relations F1 {record['test']['relations']:.3f} ({record['train_time_s']:.0f} s training)")


def collect(simulation: Simulation, seeds: list[int]) -> list[dict[str, Any]]:
    """One record per finished (strategy, seed, step or ``--between`` point, by size); the shared start counts for every strategy."""
    return [
        {"strategy": strategy, **record}
        for seed in seeds
        for strategy in simulation.strategies
        for _, folder in sorted(
            [(step, step_dir(simulation, seed, strategy, index)) for index, step in enumerate(simulation.steps)]
            + [(size, size_dir(simulation, seed, strategy, size)) for size in simulation.between]
        )
        if (record := read_step(folder)) is not None
    ]


def complete_seeds(records: list[dict[str, Any]], strategies: list[str], steps: list[int]) -> list[int]:
    """The seeds whose every strategy reached every step: the only ones a comparison of curves may average."""
    counts = Counter((r["seed"], r["strategy"]) for r in records if r["sentences"] in steps)
    return sorted({seed for seed, _ in counts if all(counts[(seed, s)] == len(steps) for s in strategies)})


def summary(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Mean scores over seeds per (strategy, labelled sentences), with how many seeds each mean covers."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["strategy"], record["sentences"]), []).append(record)
    return {
        key: {"seeds": len(found), **{split: {kind: sum(r[split][kind] for r in found) / len(found) for kind in KINDS} for split in SPLITS}}
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


def bar(means: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    """Random's mean test F1 at its last step, and the sentences each other strategy needs to reach it (None: not reached)."""
    if not any(s == "random" for s, _ in means):
        return {}
    last = max(size for s, size in means if s == "random")
    out: dict[str, Any] = {"random_sentences": last, "random_test_f1": {kind: means[("random", last)]["test"][kind] for kind in KINDS}, "sentences_to_reach": {}}
    for strategy in sorted({s for s, _ in means} - {"random"}):
        curve = {kind: [(size, scores["test"][kind]) for (s, size), scores in means.items() if s == strategy] for kind in KINDS}
        out["sentences_to_reach"][strategy] = {kind: sentences_to_reach(curve[kind], out["random_test_f1"][kind]) for kind in KINDS}
    return out


def markdown(means: dict[tuple[str, int], dict[str, Any]], reached: dict[str, Any]) -> str:
    """The README table: mean F1 per strategy and step, then what each strategy saves over random."""
    lines = [
        "| strategy | sentences | seeds | dev entities | dev relations | test entities | test relations |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (strategy, size), scores in means.items():
        cells = " | ".join(f"{scores[split][kind]:.3f}" for split in SPLITS for kind in KINDS)
        lines.append(f"| {strategy} | {size} | {scores['seeds']} | {cells} |")
    if reached:
        f1 = reached["random_test_f1"]
        lines += [
            "",
            f"Sentences needed to reach random selection's mean test F1 at {reached['random_sentences']} sentences "
            f"(entities {f1['entities']:.3f}, relations {f1['relations']:.3f}), linear between steps:",
            "",
            "| strategy | entities | relations |",
            "|---|---:|---:|",
        ]
        for strategy, needed in reached["sentences_to_reach"].items():
            lines.append(f"| {strategy} | " + " | ".join("not reached" if needed[kind] is None else f"{needed[kind]:.0f}" for kind in KINDS) + " |")
    return "\n".join(lines) + "\n"


def plot(means: dict[tuple[str, int], dict[str, Any]], path: Path) -> None:
    """F1 against labelled sentences, one panel per kind, test solid and dev dashed."""
    from .report import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, kind in zip(axes, KINDS):
        for number, strategy in enumerate(sorted({s for s, _ in means})):
            sizes = sorted(size for s, size in means if s == strategy)
            for split, style in (("test", "-"), ("dev", "--")):
                axis.plot(sizes, [means[(strategy, size)][split][kind] for size in sizes], style, marker="o", color=f"C{number}", label=f"{strategy} ({split})")
        axis.set(title=f"{kind} micro F1" + (" (strict)" if kind == "relations" else ""), xlabel="labelled sentences", ylabel="F1 (mean over seeds)")
        axis.set_xticks(sorted({size for _, size in means}))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def write_outputs(records: list[dict[str, Any]], settings: dict[str, Any], out: Path) -> str:
    """results.json, learning_curve.png and learning_curve.md; returns the markdown.

    Table and plot show every finished step (with how many seeds each mean covers); the bar
    compares curves over the seeds that finished every step only, so a partial run never
    sets one seed's random point against another seed's uncertainty curve.
    """
    means = summary(records)
    complete = complete_seeds(records, settings["strategies"], settings["steps"])
    reached = bar(summary([r for r in records if r["seed"] in complete])) if complete else {}
    table = markdown(means, reached)
    if reached:
        table += f"\n(bar over seed(s) {', '.join(map(str, complete))}, the ones that finished every step)\n"
    else:
        table += "\nNo seed has finished every step yet: no bar.\n"
    atomic_write_text(out / "results.json", json.dumps({"settings": settings, "complete_seeds": complete, "bar": reached, "runs": records}, ensure_ascii=False, indent=1) + "\n")
    atomic_write_text(out / "learning_curve.md", table)
    if means:
        plot(means, out / "learning_curve.png")
    return table


def refuse_leaks(pool: list[Example], held_out: dict[str, list[Example]]) -> None:
    """The pool must never hold a dev or test sentence (by id or by text): the curve would score what it trained on."""
    for name, examples in held_out.items():
        ids, texts = {e.id for e in examples}, {e.text for e in examples}
        for number, example in enumerate(pool, start=1):
            if example.id in ids or example.text in texts:
                raise ValueError(f"sentence {number} ({example.id!r}) is also in {name}: the pool must not hold evaluation sentences")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m veille.training.learning_curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/learning-curve"), help="folder for the steps, results.json, learning_curve.png and .md")
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14], help="one shared start and one curve per strategy for each seed")
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 200, 400, 800], help="labelled sentences at each training (the first are random)")
    parser.add_argument("--between", type=int, nargs="+", default=[], metavar="N", help="also train at N sentences, between two steps, with the head of the batch the step before chose")
    parser.add_argument("--strategies", nargs="+", default=["random", "uncertainty"], choices=STRATEGIES, help="strategies to compare")
    parser.add_argument("--preset", default="quick", help="training preset or TOML file")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE", help="any training config key (repeatable): --set epochs=1")
    parser.add_argument("--train", type=Path, default=Path(corpus_file("train")), help="gold JSONL: pool and annotator (default: the shipped train split)")
    parser.add_argument("--dev", type=Path, default=Path(corpus_file("dev")), help="gold JSONL that selects each training's epoch and thresholds")
    parser.add_argument("--test", type=Path, default=Path(corpus_file("test")), help="gold JSONL scored at every step")
    parser.add_argument("--per-document", type=int, default=DEFAULT_PER_DOCUMENT, help="at most this many sentences of one document per batch")
    parser.add_argument("--report-only", action="store_true", help="train nothing: write the outputs from the steps finished so far")
    args = parser.parse_args(argv)
    if sorted(set(args.steps)) != args.steps or args.steps[0] < 1:
        parser.error("--steps must be positive and increasing")
    if any(not args.steps[0] < size < args.steps[-1] or size in args.steps for size in args.between):
        parser.error("each --between size must lie between two --steps")
    try:
        args.overrides = parse_settings(args.settings)
        load_config(args.preset, args.overrides)
    except ConfigError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        pool, dev, test = read_corpus(args.train), read_corpus(args.dev), read_corpus(args.test)
    except CorpusError as exc:  # every bad line, as file:line: field: message
        sys.exit(f"error: invalid gold file:\n{exc}")
    if args.steps[-1] > len(pool):
        sys.exit(f"error: the last step ({args.steps[-1]}) exceeds the {len(pool)} sentences of {args.train}")
    try:
        refuse_leaks(pool, {str(args.dev): dev, str(args.test): test})
    except ValueError as exc:
        sys.exit(f"error: {args.train}: {exc}")
    strategies = list(dict.fromkeys(args.strategies))
    simulation = Simulation(args.preset, args.overrides, pool, args.dev, args.test, args.steps, strategies, args.per_document, args.out, tuple(sorted(set(args.between))))
    if not args.report_only:
        run(simulation, args.seeds)
    records = collect(simulation, args.seeds)
    settings = {"preset": args.preset, "overrides": args.overrides, "seeds": args.seeds, "steps": args.steps, "between": sorted(set(args.between)), "strategies": strategies, "per_document": args.per_document,
                "train": args.train.name, "dev": args.dev.name, "test": args.test.name}
    print(write_outputs(records, settings, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
