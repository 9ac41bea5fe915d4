"""Benchmarks (figures for the README; targets, never asserted in tests).

    python -m veille.training.benchmark speed   --base-model e5-small-offline --data train.jsonl
    python -m veille.training.benchmark quality --config offline --test test.jsonl --test seed.jsonl

``speed`` trains one epoch with veille's loop and one with a Hugging Face ``Trainer`` +
``AutoModelForTokenClassification`` on the same encoder, sentences, batch size and frozen
layers, in the same process, and prints the throughput ratio. The spaCy comparison is
``veille.training.spacy_baseline``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from veille.annotation.corpus import read_corpus, write_corpus

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


@app.command()
def speed(
    data: Annotated[Path, typer.Option(help="Gold JSONL to train on.")],
    base_model: Annotated[str, typer.Option(help="Encoder.")] = "e5-small-offline",
    sentences: Annotated[int, typer.Option(help="How many sentences of the file.")] = 320,
    batch_size: Annotated[int, typer.Option()] = 16,
    max_length: Annotated[int, typer.Option()] = 128,
    freeze_layers: Annotated[int, typer.Option(help="Frozen lower layers (both sides).")] = 0,
) -> None:
    """Training throughput (sentences/s): veille's joint loop vs HF Trainer token classification."""
    from veille.training.config import TrainConfig
    from veille.training.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        examples = read_corpus(data)[:sentences]
        subset, dev = Path(tmp) / "subset.jsonl", Path(tmp) / "dev.jsonl"
        write_corpus(subset, examples)
        write_corpus(dev, examples[:1])
        config = TrainConfig(
            base_model=base_model, train_files=[str(subset)], dev_files=[str(dev)], output=str(Path(tmp) / "veille"), epochs=1, batch_size=batch_size,
            max_length=max_length, device="cpu", freeze_embeddings=True, freeze_layers=freeze_layers,
        )
        ours = train(config, progress=False).sentences_per_s
        theirs = _hf_trainer_throughput(config, subset, Path(tmp) / "hf")
    result = {"sentences": sentences, "batch_size": batch_size, "freeze_layers": freeze_layers, "veille_sent_per_s": round(ours, 2), "hf_trainer_sent_per_s": round(theirs, 2), "ratio": round(ours / theirs, 3)}
    print(json.dumps(result, indent=2))


def _hf_trainer_throughput(config, data: Path, output: Path) -> float:
    """One epoch of ``Trainer`` on ``AutoModelForTokenClassification``, same words/labels as veille."""
    from datasets import Dataset
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, Trainer, TrainingArguments

    from veille.annotation.schema import load_schema
    from veille.models.base import resolve_base_model
    from veille.models.encoding import IGNORE, bio_labels, encode_example

    schema = load_schema()
    path = resolve_base_model(config.base_model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = []
    for example in read_corpus(data, schema):
        enc = encode_example(tokenizer, example, schema)
        labels = [IGNORE] * len(enc.input_ids)
        for token, label in zip(enc.word_tokens, enc.word_labels):
            labels[token] = label
        limit = config.max_length - 2
        rows.append({"input_ids": [tokenizer.cls_token_id, *enc.input_ids[:limit], tokenizer.sep_token_id], "labels": [IGNORE, *labels[:limit], IGNORE]})
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(bio_labels(schema)))
    base = getattr(model, model.base_model_prefix)
    for module in [base.embeddings.word_embeddings, *base.encoder.layer[: config.freeze_layers]]:
        module.requires_grad_(False)
    if config.freeze_layers:
        base.embeddings.requires_grad_(False)
    args = TrainingArguments(
        output_dir=str(output), per_device_train_batch_size=config.batch_size, num_train_epochs=1, learning_rate=config.lr_encoder,
        save_strategy="no", report_to=[], use_cpu=True, seed=config.seed, disable_tqdm=True, logging_strategy="no",
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows), data_collator=DataCollatorForTokenClassification(tokenizer))
    return trainer.train().metrics["train_samples_per_second"]


@app.command()
def quality(
    test: Annotated[list[Path], typer.Option(help="Held-out gold file(s), each scored separately.")],
    config: Annotated[str, typer.Option(help="Preset or TOML file.")] = "offline",
    train_file: Annotated[Optional[list[Path]], typer.Option("--train", help="Training file(s) (default: the preset's).")] = None,
    dev: Annotated[Optional[list[Path]], typer.Option(help="Dev file(s) (default: the preset's).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Model directory.")] = None,
    epochs: Annotated[Optional[int], typer.Option()] = None,
    freeze_layers: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Train with a preset, then score each held-out file."""
    from veille.models.predictor import Predictor
    from veille.training.config import load_config
    from veille.training.evaluate import evaluate
    from veille.training.trainer import train

    overrides = {"train_files": [str(p) for p in train_file] if train_file else None, "dev_files": [str(p) for p in dev] if dev else None, "output": str(output) if output else None, "epochs": epochs, "freeze_layers": freeze_layers}
    settings = load_config(config, overrides)
    start = time.perf_counter()
    result = train(settings, overwrite=True)
    predictor = Predictor.load(result.output)
    summary = {"config": config, "train_time_s": round(time.perf_counter() - start), "best_epoch": result.best_epoch, "sentences_per_s": round(result.sentences_per_s, 2)}
    for path in test:
        scores = evaluate(predictor, read_corpus(path, predictor.schema)).to_dict()
        summary[path.name] = {key: scores[key]["micro"]["f1"] for key in ("entities", "relations", "relations_gold_entities")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    app()
