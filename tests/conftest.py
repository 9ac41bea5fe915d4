"""Shared fixtures. Each stage's fixtures are grouped under a comment naming the stage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach a model hub: everything it needs is built or shipped locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
