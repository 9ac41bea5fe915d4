"""What a base model is, in the numbers people compare encoders by (for ``veille models info``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import resolve_base_model


@dataclass(frozen=True)
class BaseModelInfo:
    name: str
    location: str            # the directory from_pretrained will read (or the hub id)
    architecture: str
    layers: int
    hidden_size: int
    heads: int
    max_positions: int
    tokenizer_vocab: int | None  # pieces the tokenizer produces; None without a tokenizer
    embedding_rows: int          # rows of the input embedding matrix (may exceed the vocabulary)
    parameters: int
    disk_bytes: int | None       # size of the local directory; None for a hub id


def describe_base_model(name: str) -> BaseModelInfo:
    """Resolve ``name`` (converting ``e5-small-offline`` if needed) and describe it.

    The parameter count comes from instantiating the architecture on the ``meta``
    device: exact for the config, and no weights are loaded.
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    location = resolve_base_model(name)
    config = AutoConfig.from_pretrained(location)
    with torch.device("meta"):
        parameters = sum(p.numel() for p in AutoModel.from_config(config).parameters())
    try:
        tokenizer_vocab = len(AutoTokenizer.from_pretrained(location))
    except (OSError, ValueError):
        tokenizer_vocab = None
    path = Path(location)
    return BaseModelInfo(
        name=name, location=location,
        architecture=f"{config.architectures[0] if config.architectures else '?'} ({config.model_type})",
        layers=config.num_hidden_layers, hidden_size=config.hidden_size, heads=config.num_attention_heads,
        max_positions=config.max_position_embeddings, tokenizer_vocab=tokenizer_vocab,
        embedding_rows=config.vocab_size, parameters=parameters,
        disk_bytes=sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else None,
    )
