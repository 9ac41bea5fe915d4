"""Where veille keeps what it builds once and reuses (converted base models).

Follows the usual conventions so that CI and users can redirect it: ``$VEILLE_CACHE``
wins, then ``$XDG_CACHE_HOME/veille``, then ``~/.cache/veille``.
"""

from __future__ import annotations

import os
from pathlib import Path


def veille_cache_dir() -> Path:
    """The root of veille's cache (not created here: callers create what they write)."""
    if os.environ.get("VEILLE_CACHE"):
        return Path(os.environ["VEILLE_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "veille"
    return Path.home() / ".cache" / "veille"
