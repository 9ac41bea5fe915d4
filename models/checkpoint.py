"""A trained model is one directory; this module writes it and loads it back, refusing broken ones.

Layout: ``config.json`` (encoder config), ``joint_config.json`` (heads, labels, name,
version), ``model.safetensors`` (all weights), the tokenizer files, ``schema.json``,
``training_config.json``; training adds ``metrics.json``, ``README.md`` (model card) and
PNG charts. Each file is written to a temp folder first and renamed into place, so no
file is ever half-written; the weights carry the version of their save, and loading
refuses a directory whose weights and ``joint_config.json`` come from different saves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from veille.annotation.atomic import default_file_mode
from veille.annotation.schema import Schema, SchemaError, parse_schema

from .joint import JointConfig, JointModel

# tokenizer.json too: veille needs a fast tokenizer (character offsets), and without that file
# transformers would try to rebuild one from other files and fail with its own message.
REQUIRED_FILES = ("config.json", "joint_config.json", "model.safetensors", "schema.json", "tokenizer.json", "tokenizer_config.json", "training_config.json")
MARKER = "joint_config.json"  # a directory holding this file holds a veille model
RELATION_HEAD = "multi-label"  # the relation head's kind, in MARKER: older saves had a single-label softmax head


class CheckpointError(ValueError):
    """A model directory is missing, incomplete, unreadable or trained on another schema."""


@dataclass
class LoadedModel:
    model: JointModel
    tokenizer: Any
    schema: Schema
    name: str
    version: str
    info: dict[str, Any]  # joint_config.json as saved (base model, creation time…)
    training_config: dict[str, Any]


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


def save_model(
    out_dir: str | Path, model: JointModel, tokenizer, schema: Schema, training_config: dict[str, Any], base_model: str, extra: dict[str, str] | None = None
) -> str:
    """Write the whole model directory; ``extra`` maps file names to text (metrics, card). Returns the version."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    info = {
        "model_name": out_dir.resolve().name,
        "model_version": version,
        "base_model": base_model,
        "relation_head": RELATION_HEAD,
        "schema_sha256": schema_checksum(schema),
        "joint": model.config.to_dict(),
    }
    staging = Path(tempfile.mkdtemp(prefix=".save-", dir=out_dir))
    try:
        model.encoder.config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt", "model_version": version})
        files = {
            "schema.json": schema.to_dict(),
            "training_config.json": training_config,
            MARKER: info,
        }
        for name, content in files.items():
            (staging / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        for name, text in (extra or {}).items():
            (staging / name).write_text(text, encoding="utf-8")
        # The marker (joint_config.json, holding the version) goes last: a save interrupted
        # between two renames leaves weights whose version differs from it, which load refuses.
        mode = default_file_mode()
        for path in sorted(staging.iterdir(), key=lambda p: p.name == MARKER):
            path.chmod(mode)  # as a plain write would leave it, whatever the libraries writing into staging did
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version


def saved_version(model_dir: str | Path) -> str:
    """The ``model_version`` of a model directory's last save, read without loading anything else."""
    info = _read_json(Path(model_dir) / MARKER)
    return str(info.get("model_version", "unknown")) if isinstance(info, dict) else "unknown"


def load_model(model_dir: str | Path, encoder_weights: bool = True) -> LoadedModel:
    """Load a model directory on CPU; raise :class:`CheckpointError` saying what is wrong.

    ``encoder_weights`` False leaves the encoder an empty shell on the ``meta`` device and
    reads only the heads' weights: what the ONNX runtime needs, whose encoder is the
    exported graph (several seconds and hundreds of MB saved at every start).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: no such model directory")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise CheckpointError(f"{model_dir}: incomplete model directory, missing {', '.join(missing)} (was training interrupted before the first save?)")
    info = _read_json(model_dir / MARKER)
    if isinstance(info, dict) and info.get("relation_head") != RELATION_HEAD:
        raise CheckpointError(f"{model_dir}: trained by an older veille whose relation head predicts one label per pair; train it again")
    try:
        schema = parse_schema(_read_json(model_dir / "schema.json"), source=str(model_dir / "schema.json"))
        joint = JointConfig(**info["joint"])
        encoder_config = AutoConfig.from_pretrained(model_dir)
        with _no_random_init():
            model = JointModel.from_encoder_config(encoder_config, joint, empty_encoder=not encoder_weights)
        _check_same_save(model_dir, info)
        weights = load_file(str(model_dir / "model.safetensors")) if encoder_weights else _head_weights(model_dir / "model.safetensors")
        _check_finite(weights, model_dir)
        missing, unexpected = model.load_state_dict(weights, strict=encoder_weights)
        if unexpected or any(not name.startswith("encoder.") for name in missing):
            raise RuntimeError(f"the heads' weights do not match joint_config.json (missing {missing}, unexpected {unexpected})")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except CheckpointError:
        raise
    except (SchemaError, SafetensorError, KeyError, TypeError, RuntimeError, OSError, ValueError) as exc:
        raise CheckpointError(f"{model_dir}: cannot load the model: {exc}") from exc
    if joint.entity_labels != schema.entity_labels or joint.relation_labels != schema.relation_labels:
        raise CheckpointError(f"{model_dir}: joint_config.json labels do not match schema.json")
    if info.get("schema_sha256", schema_checksum(schema)) != schema_checksum(schema):  # directories saved before the checksum: not checked
        raise CheckpointError(
            f"{model_dir}: schema.json is not the schema this model was trained with (its labels or allowed argument types were edited); "
            "restore it, or train a model on the new schema"
        )
    model.eval()
    return LoadedModel(model, tokenizer, schema, info.get("model_name", model_dir.name), info.get("model_version", "unknown"), info, _read_json(model_dir / "training_config.json"))


def check_schema(model_schema: Schema, data_schema: Schema, model_dir: str | Path) -> None:
    """Refuse data annotated under another scheme: scores against other labels mean nothing."""
    if model_schema.same_labels(data_schema):
        return
    differences = []
    for what, ours, theirs in (
        ("entity labels", model_schema.entity_labels, data_schema.entity_labels),
        ("relation labels", model_schema.relation_labels, data_schema.relation_labels),
    ):
        only_model = [x for x in ours if x not in theirs]
        only_data = [x for x in theirs if x not in ours]
        if only_model or only_data:
            differences.append(f"{what}: only in the model {only_model or '[]'}, only in the data {only_data or '[]'}")
    detail = "; ".join(differences) or "relation constraints or label order differ"
    raise CheckpointError(
        f"schema mismatch: the model in {model_dir} was trained on schema {model_schema.name!r} v{model_schema.version} "
        f"but the data uses {data_schema.name!r} v{data_schema.version} ({detail})"
    )


def schema_checksum(schema: Schema) -> str:
    """SHA-256 of what the model learnt from the schema (labels, argument types, symmetry), not its descriptions."""
    return hashlib.sha256(json.dumps(schema.constraints()).encode("utf-8")).hexdigest()


def _check_finite(weights: dict[str, Any], model_dir: Path) -> None:
    """Refuse weights holding NaN or infinity.

    Such weights load without error and predict quietly wrong: a NaN relation head scored
    every pair NaN, a NaN entity head found no entity at all. A tensor's min and max are
    finite exactly when all its values are (both propagate NaN, and an infinity is an
    extreme): 0.04 s for the 96 M-value embedding matrix of e5-small where
    ``isfinite().all()`` took 2.1 s (same busy core), paid at every start of ``predict``, ``serve`` and each Ray actor.
    """
    bad = [name for name, tensor in weights.items() if tensor.is_floating_point() and tensor.numel() and not bool(torch.stack(torch.aminmax(tensor)).isfinite().all())]
    if bad:
        raise CheckpointError(
            f"{model_dir}: model.safetensors is corrupt: {len(bad)} tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}{', …' if len(bad) > 3 else ''}); "
            "restore the directory or train again"
        )


def _no_random_init() -> contextlib.AbstractContextManager:
    """transformers' context that builds modules without drawing random weights.

    Every parameter is overwritten by the saved weights right after (a strict load), and
    drawing 118 M random numbers was a third of a model's load time: every ``predict``,
    ``serve`` and Ray actor paid it at start.
    """
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers 4 keeps it in modeling_utils
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()


def _head_weights(path: Path) -> dict[str, Any]:
    """Every tensor of ``path`` but the encoder's (safetensors reads them one by one, without the rest)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as weights:
        return {name: weights.get_tensor(name) for name in weights.keys() if not name.startswith("encoder.")}


def _check_same_save(model_dir: Path, info: dict[str, Any]) -> None:
    """Refuse weights written by another save than ``joint_config.json`` (an interrupted save)."""
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as weights:
        saved = (weights.metadata() or {}).get("model_version")
    if saved is not None and saved != info.get("model_version"):
        raise CheckpointError(
            f"{model_dir}: model.safetensors (version {saved}) and joint_config.json (version {info.get('model_version')}) "
            "come from two different saves; the last save was interrupted: train again or restore the directory"
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable: {exc}") from None
