"""Training configuration: one dataclass, TOML presets, CLI overrides on top.

Presets (``training/presets/*.toml``): ``default`` (camembert-base, GPU-sized),
``offline`` (the bundled e5-small-offline encoder) and ``quick`` (about 56 CPU-minutes).
Data paths default to the compiled gold corpus shipped in ``veille.annotation``.
"""

from __future__ import annotations

import hashlib
import tomllib
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import veille.annotation

PRESETS_DIR = Path(__file__).parent / "presets"
CORPUS_DIR = Path(veille.annotation.__file__).parent / "corpus"


class ConfigError(ValueError):
    """A preset or config file is missing or has an unknown or ill-typed key."""


def corpus_file(split: str) -> str:
    return str(CORPUS_DIR / f"{split}.jsonl")


@dataclass
class TrainConfig:
    base_model: str = "camembert-base"
    train_files: list[str] = field(default_factory=lambda: [corpus_file("train")])
    dev_files: list[str] = field(default_factory=lambda: [corpus_file("dev")])
    output: str = "runs/veille-model"
    schema: str | None = None  # default: the built-in v1 scheme
    epochs: int = 10
    batch_size: int = 16
    grad_accum: int = 1
    lr_encoder: float = 5e-5
    lr_heads: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 256
    stride: int = 64
    dropout: float = 0.1
    freeze_embeddings: bool = False  # word embeddings: most of a 250k-vocab encoder's parameters
    freeze_layers: int = 0  # lowest encoder layers kept frozen: no backward pass through them
    patience: int = 3  # epochs without dev improvement before stopping
    # An epoch shows at least this many sentences: a smaller training set is passed over
    # several times an epoch (training/data.py), so that it still gets optimizer steps.
    min_epoch_sentences: int = 0
    # Warm-up epochs before the relation loss also covers the pairs of the entities the
    # token head predicts (0: from the start; at least `epochs`: never).
    predicted_pairs_after: int = 1
    # What the relation head reads (models/joint.py): "shared", the entity pass's states, or
    # "markers", a second encoder pass with typed entity markers (better pairs, about twice the encoder time).
    relation_encoder: str = "shared"
    # Whether a candidate pair also reads a sentence context pooled by an attention from its
    # arguments (models/joint.py), beside the mean of the words between them.
    context_attention: bool = False
    # Whether a pair also reads the max over the words between its arguments, and an
    # embedding of their order and token distance (models/joint.py).
    between_max: bool = False
    pair_distance: bool = False
    seed: int = 13
    device: str = "auto"  # auto | cpu | cuda
    mixed_precision: str = "auto"  # auto (bf16 on GPUs that have it, else fp16; none on CPU) | no | bf16 | fp16
    num_threads: int | None = None  # CPU threads for torch
    # Training-time augmentation (training/augment.py): probabilities, 0 = off.
    augment_mentions: float = 0.0  # replace each PER/ORG/LOC/PRODUCT mention by another of the corpus
    augment_title_case: float = 0.0  # title-case a whole sentence, as scraped headlines are
    augment_upper_case: float = 0.0  # write one mention of a sentence in capitals

    def to_dict(self, portable: bool = False) -> dict[str, Any]:
        """The configuration; ``portable`` records data files as :func:`portable_path` does (for a model directory)."""
        out = asdict(self)
        if portable:
            for key in ("train_files", "dev_files"):
                out[key] = [portable_path(p) for p in out[key]]
            out["output"] = portable_path(self.output)
            out["base_model"] = self.portable_base_model
        return out

    @property
    def portable_base_model(self) -> str:
        """The base model as a model directory records it: a name as given, a local directory as :func:`portable_path`."""
        return portable_path(self.base_model) if Path(self.base_model).exists() else self.base_model


def portable_path(path: str) -> str:
    """A data path as a model directory records it: relative to the working directory when under it, else the file name.

    A model directory travels (to a colleague, into a container): absolute paths of the
    training machine leak its home layout and mean nothing elsewhere. The metrics record
    each file's SHA-256 beside it, which says exactly which data it was.
    """
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return resolved.name


def data_file_record(path: str) -> dict[str, str]:
    """``{"file": portable path, "sha256": digest}`` of one training or dev file."""
    return {"file": portable_path(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}


def preset_for_machine(device: str | None = None) -> str:
    """The preset ``veille train`` runs when none is given: ``default`` (camembert-base) on a GPU, else ``offline``.

    ``default`` is sized for a GPU and needs camembert-base in the local Hugging Face
    cache; ``offline`` trains the bundled encoder on a CPU with no network.
    """
    from veille.models.devices import resolve_device

    return "default" if resolve_device(device or "auto").type == "cuda" else "offline"


def preset_summaries() -> dict[str, str]:
    """One line per shipped preset (base model, epochs, frozen layers), for help screens."""
    out = {}
    for path in sorted(PRESETS_DIR.glob("*.toml")):
        values = tomllib.loads(path.read_text(encoding="utf-8"))
        frozen = f", {values['freeze_layers']} frozen layers" if values.get("freeze_layers") else ""
        out[path.stem] = f"{values.get('base_model', TrainConfig.base_model)}, {values.get('epochs', TrainConfig.epochs)} epochs{frozen}"
    return out


def load_config(preset_or_file: str = "default", overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A preset name or a TOML file, then ``overrides`` (None values are ignored)."""
    path = Path(preset_or_file)
    if not path.suffix:
        path = PRESETS_DIR / f"{preset_or_file}.toml"
    if not path.is_file():
        presets = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.toml")))
        raise ConfigError(f"{preset_or_file}: no such config file or preset (presets: {presets})")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(values, source=str(path))


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings → overrides; a value is read as TOML (``3``, ``0.5``, ``true``), else kept as text."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        try:
            values[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key.strip()] = raw
    return values


def from_dict(values: dict[str, Any], source: str = "<config>") -> TrainConfig:
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    for key, value in values.items():
        expected = _value_type(key)
        if value is None:
            continue
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{source}: {key}: expected {expected.__name__}, got {value!r}")
    for key in ("predicted_pairs_after", "min_epoch_sentences"):
        if values.get(key) is not None and values[key] < 0:
            raise ConfigError(f"{source}: {key}: must be at least 0, got {values[key]!r}")
    from veille.models.joint import RELATION_ENCODERS  # here, not at the top: the CLI reads presets without loading torch

    if values.get("relation_encoder") is not None and values["relation_encoder"] not in RELATION_ENCODERS:
        raise ConfigError(f"{source}: relation_encoder: choose from {', '.join(RELATION_ENCODERS)}, got {values['relation_encoder']!r}")
    for key in ("train_files", "dev_files"):
        if key in values:
            values[key] = [str(p) for p in values[key]]
    return TrainConfig(**values)


def _value_type(key: str) -> type:
    """The type a value of ``key`` must have: ``str`` for ``str | None``, ``list`` for ``list[str]``."""
    hint = get_type_hints(TrainConfig)[key]
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    return get_origin(hint) or hint
