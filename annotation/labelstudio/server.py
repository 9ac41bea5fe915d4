"""Running a local Label Studio server (the PyPI ``label-studio`` package) as a child process.

Label Studio lives in its own virtual environment (its pins clash with veille's), so it
is found as an executable, never imported. Facts that shape this module (1.23.2):

- ``--internal-host`` binds the socket; ``--host`` is only the public URL.
- A busy port silently moves to the next free one, so the real URL is read from the log.
- Plain ``USERNAME``/``PASSWORD``/``HOST``/``PORT``/``DEBUG`` variables leak into its
  settings, and every command (even ``--version``) touches ``LABEL_STUDIO_BASE_DATA_DIR``,
  so each call gets a scrubbed environment.
- Legacy API tokens only work when enabled as the organisation is created, at ``init``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
DATABASE = "label_studio.sqlite3"
TOKEN_FILE = "veille-api-token"
LOG_FILE = "label-studio.log"
_LEAKY = ("USERNAME", "PASSWORD", "HOST", "PORT", "DEBUG")
_STARTED = re.compile(r"Starting development server at (http://\S+?)/?$", re.MULTILINE)


class LabelStudioError(RuntimeError):
    """Label Studio is missing, cannot start, or does not answer; the message says what to do."""


@dataclass
class Account:
    """The admin account created on first start; the token is what push/pull authenticate with."""

    email: str = "admin@veille.local"
    password: str | None = None
    token: str | None = None


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self, timeout: float = 15) -> None:
        """Terminate the server (then kill it if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def find_executable() -> str:
    """``$VEILLE_LABEL_STUDIO``, else ``<repo>/.venv-labelstudio/bin/label-studio``, else PATH."""
    explicit = os.environ.get("VEILLE_LABEL_STUDIO")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise LabelStudioError(f"$VEILLE_LABEL_STUDIO={explicit} is not an executable file")
        return explicit
    local = REPO_ROOT / ".venv-labelstudio" / "bin" / "label-studio"
    if os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("label-studio")
    if found:
        return found
    raise LabelStudioError(
        "Label Studio is not installed: run .ci/install-labelstudio, or pip install label-studio "
        "in a separate venv and set VEILLE_LABEL_STUDIO to its label-studio executable"
    )


def server_env(data_dir: Path) -> dict[str, str]:
    """The environment for every Label Studio command: its data dir, no telemetry, no leaks."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not any(key == f"{prefix}{name}" for name in _LEAKY for prefix in ("", "LABEL_STUDIO_", "HEARTEX_"))
    }
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(Path(data_dir).resolve()),
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
    )
    return env


def is_initialised(data_dir: Path) -> bool:
    return (Path(data_dir) / DATABASE).is_file()


def init_data_dir(data_dir: Path, account: Account, executable: str | None = None) -> Account:
    """Create the database, admin user and organisation (45–65 s of migrations on 2 cores).

    Missing password and token are generated; the token is kept in the data dir (mode 600)
    so that later starts can print it again. Returns the account actually created.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    account = Account(account.email, account.password or secrets.token_urlsafe(12), account.token or secrets.token_hex(20))
    command = [
        executable or find_executable(), "init", "--quiet", "--no-browser", "--enable-legacy-api-token",
        "--username", account.email, "--password", account.password, "--user-token", account.token,
    ]
    done = subprocess.run(command, env=server_env(data_dir), cwd=data_dir, capture_output=True, text=True)
    if done.returncode != 0 or not is_initialised(data_dir):
        raise LabelStudioError(f"label-studio init failed in {data_dir}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    token_file = data_dir / TOKEN_FILE
    token_file.write_text(account.token + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    return account


def saved_token(data_dir: Path) -> str | None:
    path = Path(data_dir) / TOKEN_FILE
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def copy_data_dir(template: Path, data_dir: Path) -> None:
    """Start from an initialised template (database, secret key, token): a ~5 s start instead of a minute."""
    shutil.copytree(template, data_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(LOG_FILE))


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_server(
    data_dir: Path, port: int, host: str = "127.0.0.1", executable: str | None = None, timeout: float = 180
) -> Server:
    """Start Label Studio on an initialised data dir and wait until it answers.

    The log goes to ``<data_dir>/label-studio.log``; the URL is the one the server
    announces there, in case it moved off a port taken in the meantime.
    """
    data_dir = Path(data_dir).resolve()
    if not is_initialised(data_dir):
        raise LabelStudioError(f"{data_dir} has no Label Studio database: initialise it first")
    if not port_is_free(host, port):
        raise LabelStudioError(f"port {port} on {host} is already in use: choose another with --port")
    log = data_dir / LOG_FILE
    command = [executable or find_executable(), "start", "--no-browser", "--internal-host", host, "--port", str(port)]
    with log.open("w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            command, env=server_env(data_dir), cwd=data_dir, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Server(process, url="", log=log)
    try:
        server.url = wait_until_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_ready(server: Server, timeout: float) -> str:
    """Poll the log for the announced URL, then ``/health`` until it answers 200; return the URL."""
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise LabelStudioError(f"Label Studio exited with code {server.process.returncode}; see {server.log}:\n{_tail(server.log)}")
        if url is None:
            match = _STARTED.search(server.log.read_text(encoding="utf-8", errors="replace"))
            url = match.group(1) if match else None
        if url is not None:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    raise LabelStudioError(f"Label Studio did not answer within {timeout:.0f} s; see {server.log}:\n{_tail(server.log)}")


def token_works(url: str, token: str) -> bool:
    """Whether the server accepts this legacy API token (another server, or another token, would not)."""
    try:
        response = httpx.get(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}, timeout=10)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
