"""Atomic file writes: a temp file in the same folder, fsynced, then renamed over the target.

An interrupted write therefore never leaves a truncated corpus or model file behind. The
temp file is removed on any exception, Ctrl-C and (with :func:`sigterm_as_ctrl_c`) SIGTERM;
a process killed outright (``kill -9``) leaves it, and the next write of the same target
removes it: temp names carry their writer's pid, so only those of dead writers go.
The file ends with the permissions a plain ``open(path, "w")`` would have given it
(0666 less the umask): ``mkstemp`` makes temp files owner-only, and a model or
prediction file copied into a container that runs as another user must stay readable.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, default_file_mode())
    if "b" in mode:
        encoding = None
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the process umask."""
    umask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Remove the temp files that killed writers of ``path`` left behind; return them.

    A temp file is ``.<name>.<pid>.<random>.tmp`` (``.<name>.<random>.tmp`` before pids were
    added): it is stale when no process has that pid any more.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)\.)?[a-z0-9_]+\.tmp")
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = pattern.fullmatch(candidate.name)
        if match and not (match.group(1) and _alive(int(match.group(1)))):
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError):  # not a pid at all
        return False
    return True


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a job scheduler, a container stop) is handled like Ctrl-C.

    Python's default for SIGTERM is to die at once, skipping every ``finally``: temp files
    and child processes were left behind. As a KeyboardInterrupt it unwinds like Ctrl-C.
    """
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(*_: object) -> None:
    raise KeyboardInterrupt
