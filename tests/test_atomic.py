"""Atomic writes leave the permissions a plain write would have left (umask respected)."""

from __future__ import annotations

import os
import stat

import pytest

from veille.annotation.atomic import atomic_open, atomic_write_text


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_files_get_the_mode_of_a_plain_write(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_text(tmp_path / "a.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    with atomic_open(tmp_path / "b.bin", "wb") as handle:
        handle.write(b"x")
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.bin") == mode(tmp_path / "plain.txt") == expected


def test_every_file_of_a_saved_model_is_readable_by_others(tiny_trained_model, tmp_path, umask):
    """A model directory copied into a container running as another user must load there."""
    from veille.models.checkpoint import load_model, save_model

    umask(0o022)
    loaded = load_model(tiny_trained_model)
    out = tmp_path / "model"
    save_model(out, loaded.model, loaded.tokenizer, loaded.schema, loaded.training_config, "tiny", {"README.md": "card"})
    modes = {p.name: mode(p) for p in out.iterdir() if p.is_file()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o644}, modes
