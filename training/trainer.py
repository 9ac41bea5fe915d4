"""``veille train``: fine-tune the joint model with accelerate (CPU, one GPU, or ``accelerate launch``).

Every epoch ends with a dev evaluation, after which each relation label's threshold
is tuned on those dev predictions; the best model so far, with its thresholds, is the
model directory (so an interrupted run still leaves a usable model), training stops
after ``patience`` epochs without improvement, and the optimizer/scheduler/RNG state is
saved under ``<output>/.resume`` so ``--resume`` continues an interrupted run at the next
epoch. After ``predicted_pairs_after`` epochs, the relation loss also covers the pairs
of the entities the token head predicts (:mod:`veille.models.predicted_pairs`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from veille.annotation.atomic import atomic_write_text
from veille.annotation.console import progress_interval
from veille.annotation.corpus import read_corpus
from veille.annotation.document import Example
from veille.annotation.schema import Schema, load_schema
from veille.models.base import resolve_base_model
from veille.models.devices import half_precision, resolve_device
from veille.models.checkpoint import LoadedModel, is_model_dir, save_model
from veille.models.encoding import bio_labels
from veille.models.joint import JointConfig, JointModel
from veille.models.predicted_pairs import GoldSentence, PredictedPairs
from veille.models.predictor import Predictor

from .card import model_card
from .augment import AugmentConfig, Augmenter
from .config import TrainConfig, data_file_record
from .data import LengthGroupedBatches, TrainingCollator, UnalignedSpan, load_dataset
from .evaluate import tune_and_evaluate
from .report import plot_curves, plot_per_label

STATE_DIR = ".resume"
HELD_OUT_SPLITS = ("seed", "test")  # meta.split values (or prefixes: test-articles) that never select a model or tune a threshold
SHOWN_UNALIGNED = 20


class TrainingError(ValueError):
    """The run cannot start: output already used, nothing to resume, unusable tokenizer…"""


@dataclass
class TrainResult:
    output: Path
    best_epoch: int
    best: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    train_time_s: float = 0.0
    sentences_per_s: float = 0.0
    hardware: str = ""
    stopped_early: bool = False


def train(config: TrainConfig, overwrite: bool = False, resume: bool = False, progress: bool = True) -> TrainResult:
    output = Path(config.output)
    state_dir = output / STATE_DIR
    if resume and not (state_dir / "trainer_state.json").is_file():
        raise TrainingError(f"{output}: nothing to resume (no {STATE_DIR}/trainer_state.json); start without --resume")
    if not resume and is_model_dir(output) and not overwrite:
        raise TrainingError(f"{output} already holds a model; pass --overwrite to replace it or --resume to continue its run")
    schema = load_schema(config.schema)
    base_path = resolve_base_model(config.base_model)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    set_seed(config.seed)
    accelerator = Accelerator(cpu=config.device == "cpu", mixed_precision=_precision(config), gradient_accumulation_steps=config.grad_accum)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(f"{config.base_model}: a fast tokenizer (tokenizer.json) is needed for character offsets")
    train_set, train_examples, unaligned = load_dataset(config.train_files, schema, tokenizer)
    dev_examples = read_corpus(config.dev_files, schema)  # evaluated through the Predictor: no training encoding
    _refuse_held_out(dev_examples)
    if unaligned:
        accelerator.print(_unaligned_warning(unaligned, config.base_model))

    joint = JointConfig(
        bio_labels(schema),
        schema.entity_labels,
        schema.relation_labels,
        config.max_length,
        config.stride,
        dropout=config.dropout,
        relation_encoder=config.relation_encoder,
        context_attention=config.context_attention,
        between_max=config.between_max,
        pair_distance=config.pair_distance,
    )
    try:
        model = JointModel.from_pretrained_encoder(base_path, joint)
    except ValueError as exc:  # a max_length the encoder cannot embed
        raise TrainingError(f"{config.base_model}: {exc}") from None
    _freeze(model, config)
    optimizer = torch.optim.AdamW(_parameter_groups(model, config))
    batches = LengthGroupedBatches(list(train_set["length"]), config.batch_size, config.seed, config.min_epoch_sentences)
    augment = AugmentConfig(config.augment_mentions, config.augment_title_case, config.augment_upper_case)
    augmenter = Augmenter(augment, train_examples, config.seed) if augment.active else None
    loader = DataLoader(train_set, batch_sampler=batches, collate_fn=TrainingCollator(tokenizer, schema, config.max_length, config.stride, augmenter))
    total_steps = math.ceil(len(loader) / config.grad_accum) * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    state = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "best": {}, "bad_epochs": 0, "history": [], "train_time_s": 0.0, "sentences": 0}
    if resume:
        state = _load_resume_state(accelerator, state_dir)
        accelerator.print(f"resuming {output} after epoch {state['epoch']}")
    hardware = _hardware(accelerator)
    for epoch in range(state["epoch"], config.epochs):
        if state["bad_epochs"] >= config.patience:
            break
        loader.set_epoch(epoch)  # the prepared loader's epoch, which it passes to the sampler: a resumed run keeps the data order
        if augmenter is not None:
            augmenter.set_epoch(epoch)
        pairs_of = partial(PredictedPairs, schema, joint.bio_labels) if epoch >= config.predicted_pairs_after else None
        loss, seconds, sentences = _train_epoch(model, loader, optimizer, scheduler, accelerator, config, pairs_of, f"epoch {epoch + 1}/{config.epochs}", progress)
        state["train_time_s"] += seconds
        state["sentences"] += sentences
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.eval()
        predictor = Predictor(LoadedModel(unwrapped, tokenizer, schema, output.name, "training", {}, {}), accelerator.device)
        with accelerator.autocast():  # dev is scored at the precision the model trains (and is served) at
            dev = tune_and_evaluate(predictor, dev_examples, batch_size=config.batch_size * 2)
        record = {
            "epoch": epoch + 1,
            "train_loss": round(loss, 5),
            "epoch_time_s": round(seconds, 2),
            "sentences_per_s": round(sentences / seconds, 2) if seconds else 0.0,
            "dev_score": round(dev.score, 4),
            "dev_entity_f1": round(dev.entities.micro.f1, 4),
            "dev_relation_f1": round(dev.relations.micro.f1, 4),
        }
        state["history"].append(record)
        improved = dev.score > state["best_score"]
        accelerator.print(
            f"epoch {epoch + 1}: loss {loss:.4f}, dev entity F1 {dev.entities.micro.f1:.3f}, relation F1 {dev.relations.micro.f1:.3f}" + (" (best)" if improved else "")
        )
        state["epoch"] = epoch + 1
        if improved:
            unwrapped.config.relation_thresholds = dev.relation_thresholds  # saved with the weights they were tuned for
            state.update(best_score=dev.score, best_epoch=epoch + 1, best=dev.to_dict(), bad_epochs=0)
            if accelerator.is_main_process:
                save_model(output, unwrapped, tokenizer, schema, config.to_dict(portable=True), config.portable_base_model, {"metrics.json": _metrics_json(state, config, hardware, train_examples, dev_examples)})
        else:
            state["bad_epochs"] += 1
        _save_resume_state(accelerator, state_dir, state)
    result = TrainResult(
        output=output,
        best_epoch=state["best_epoch"],
        best=state["best"],
        history=state["history"],
        train_time_s=state["train_time_s"],
        sentences_per_s=state["sentences"] / state["train_time_s"] if state["train_time_s"] else 0.0,
        hardware=hardware,
        stopped_early=state["bad_epochs"] >= config.patience,
    )
    if accelerator.is_main_process:
        _finish(result, state, config, schema, train_examples, dev_examples)
        shutil.rmtree(state_dir, ignore_errors=True)
    return result


def _save_resume_state(accelerator: Accelerator, state_dir: Path, state: dict[str, Any]) -> None:
    """Save what decides the next epoch: weights, optimizer, scheduler, every RNG (accelerate), and the run's counters.

    Each epoch's accelerate state goes to a folder of its own, and ``trainer_state.json``,
    which names that folder, is written last and atomically: a kill at any moment leaves
    it naming a complete state (the previous epoch's until the new one is whole), never
    counters of one epoch with the optimizer of another.
    """
    checkpoint = f"epoch-{state['epoch']}"
    accelerator.wait_for_everyone()
    accelerator.save_state(str(state_dir / checkpoint))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(state_dir / "trainer_state.json", json.dumps({**state, "checkpoint": checkpoint}, indent=2))
        for old in state_dir.glob("epoch-*"):
            if old.name != checkpoint:
                shutil.rmtree(old, ignore_errors=True)


def _load_resume_state(accelerator: Accelerator, state_dir: Path) -> dict[str, Any]:
    """Restore the state :func:`_save_resume_state` named last; return the run's counters."""
    state = json.loads((state_dir / "trainer_state.json").read_text(encoding="utf-8"))
    accelerator.load_state(str(state_dir / state.pop("checkpoint")))
    return state


def _train_epoch(
    model,
    loader,
    optimizer,
    scheduler,
    accelerator: Accelerator,
    config: TrainConfig,
    pairs_of: Callable[[list[GoldSentence]], PredictedPairs] | None,
    desc: str,
    progress: bool,
) -> tuple[float, float, int]:
    """One pass over the training data; returns mean loss, seconds and sentences seen.

    ``pairs_of`` (after the warm-up) adds the pairs of predicted entities to each batch's relation loss.
    """
    model.train()
    total_loss, steps, sentences = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, disable=not (progress and accelerator.is_local_main_process), leave=False, unit="batch", mininterval=progress_interval())
    for batch in bar:
        with accelerator.accumulate(model):
            loss = model(batch, extra_pairs=pairs_of(batch["sentences"]) if pairs_of else None)["loss"]
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        total_loss += loss.item()
        steps += 1
        sentences += batch["word_index"].shape[0] * accelerator.num_processes
        bar.set_postfix(loss=f"{total_loss / steps:.4f}", sent_s=f"{sentences / (time.perf_counter() - start):.1f}", refresh=False)
    return total_loss / max(steps, 1), time.perf_counter() - start, sentences


def _refuse_held_out(dev: list[Example]) -> None:
    """Dev selects the epoch and tunes the thresholds: a seed or test sentence there would leak into both."""
    for example in dev:
        if example.split and example.split.startswith(HELD_OUT_SPLITS):
            raise TrainingError(f"dev data holds {example.id!r} of the held-out split {example.split!r}: seed and test splits are for evaluation only")


def _unaligned_warning(unaligned: list[UnalignedSpan], base_model: str) -> str:
    """Name the gold spans that cut through a word (left out of the entity loss), up to a screenful."""
    shown = "\n".join(f"  {span}" for span in unaligned[:SHOWN_UNALIGNED])
    more = f"\n  … and {len(unaligned) - SHOWN_UNALIGNED} more" if len(unaligned) > SHOWN_UNALIGNED else ""
    return f"warning: {len(unaligned)} gold span(s) cut through a word for {base_model}'s tokenizer; their words are left out of the entity loss:\n{shown}{more}"


def _freeze(model: JointModel, config: TrainConfig) -> None:
    """Freeze word embeddings and/or the lowest layers; frozen bottom layers also skip backward."""
    if config.freeze_embeddings or config.freeze_layers:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    if config.freeze_layers:
        layers = getattr(getattr(model.encoder, "encoder", None), "layer", None)
        if layers is None:
            raise TrainingError(f"{config.base_model}: freeze_layers needs a BERT-like encoder (encoder.layer)")
        for module in [model.encoder.embeddings, *layers[: config.freeze_layers]]:
            module.requires_grad_(False)


def _parameter_groups(model: JointModel, config: TrainConfig) -> list[dict[str, Any]]:
    """Encoder and heads get their own learning rates; biases and norms get no weight decay."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (name.startswith("encoder."), param.ndim < 2)
            groups.setdefault(key, []).append(param)
    return [
        {"params": params, "lr": config.lr_encoder if is_encoder else config.lr_heads, "weight_decay": 0.0 if no_decay else config.weight_decay}
        for (is_encoder, no_decay), params in groups.items()
    ]


def _precision(config: TrainConfig) -> str:
    if config.mixed_precision != "auto":
        return config.mixed_precision
    return {"bfloat16": "bf16", "float16": "fp16", None: "no"}[half_precision(resolve_device(config.device))]


def _hardware(accelerator: Accelerator) -> str:
    if accelerator.device.type == "cuda":
        name = torch.cuda.get_device_name(accelerator.device)
        return f"{accelerator.num_processes} × {name}" + (f" ({accelerator.mixed_precision})" if accelerator.mixed_precision != "no" else "")
    return f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _metrics_json(state: dict, config: TrainConfig, hardware: str, train_examples, dev_examples) -> str:
    metrics = {
        "base_model": config.portable_base_model,
        "best_epoch": state["best_epoch"],
        "dev": state["best"],
        "history": state["history"],
        "train_time_s": round(state["train_time_s"], 1),
        "sentences_per_s": round(state["sentences"] / state["train_time_s"], 2) if state["train_time_s"] else 0.0,
        "hardware": hardware,
        "data": {
            "train_files": [data_file_record(p) for p in config.train_files], "train_sentences": len(train_examples),
            "dev_files": [data_file_record(p) for p in config.dev_files], "dev_sentences": len(dev_examples),
        },
    }
    return json.dumps(metrics, indent=2, ensure_ascii=False) + "\n"


def _finish(result: TrainResult, state: dict, config: TrainConfig, schema: Schema, train_examples, dev_examples) -> None:
    """Final metrics, charts and model card next to the best model."""
    metrics_text = _metrics_json(state, config, result.hardware, train_examples, dev_examples)
    atomic_write_text(result.output / "metrics.json", metrics_text)
    plot_curves(result.history, result.output / "training_curves.png")
    if result.best:
        plot_per_label(result.best, result.output / "per_label_f1.png", title=f"dev, epoch {result.best_epoch}")
    atomic_write_text(result.output / "README.md", model_card(json.loads(metrics_text), schema, config.to_dict(portable=True)))
