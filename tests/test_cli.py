"""What a newcomer meets first: the assembled `veille` command, its version and help screens."""

from __future__ import annotations

import subprocess
import sys

from veille import __version__


def veille(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "veille", *args], capture_output=True, text=True, timeout=120)


def test_version():
    result = veille("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"veille {__version__}"
