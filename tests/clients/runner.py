"""Running the real clients: where they are installed, and one run in a sandbox.

The clients are npm packages installed by ``.ci/install-clients`` into ``.ci/node`` (or
``COMPATGATE_CLIENTS_DIR``). `require_clients` installs them when they are missing and npm is
there, skips the test with the reason when npm is absent, and fails instead under ``CI=true``.
A `Sandbox` runs one client as a subprocess with a fresh HOME and working directory, a minimal
environment (none of the caller's keys or base URLs leak in) and a timeout, configured for one
base URL, offline and non-interactive:

- `Sandbox.claude`: ``claude -p`` with ``ANTHROPIC_BASE_URL`` / ``ANTHROPIC_API_KEY`` and
  ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (no update check, telemetry, error reports
  or ``HEAD /api/hello`` probe); ``--allowedTools Bash Read`` lets the tools run unattended.
- `Sandbox.codex`: ``codex exec`` with a ``config.toml`` in a fresh ``CODEX_HOME`` naming a
  custom provider (``base_url``, ``env_key``, ``wire_api = "responses"``), with the update
  check, analytics and the plugin/app sync (which reach github.com and chatgpt.com) off,
  outside a git repository (``--skip-git-repo-check``), in the ``workspace-write`` sandbox
  (``codex exec`` never asks for approval).
- `Sandbox.gemini`: ``gemini -p`` with ``GOOGLE_GEMINI_BASE_URL`` / ``GEMINI_API_KEY``, the
  ``gemini-api-key`` auth type, auto-update and usage statistics off in ``settings.json``,
  ``--yolo --skip-trust`` and an explicit model (else a routing classifier asks the model for
  JSON first).
- `Sandbox.node`: a Node script of ``tests/clients/node/`` with the installed SDKs on
  ``NODE_PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CLIENTS", "INSTALL_SCRIPT", "NODE_SCRIPTS", "Result", "Sandbox", "clients_dir",
           "missing_clients", "require_clients"]

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / ".ci" / "install-clients"
NODE_SCRIPTS = Path(__file__).resolve().parent / "node"
CLIENTS = ("claude", "codex", "gemini")
_SDKS = ("@anthropic-ai/sdk", "openai")
_installed: dict[Path, str | None] = {}


def clients_dir() -> Path:
    """Where ``.ci/install-clients`` puts the npm packages (``node_modules`` inside)."""
    return Path(os.environ.get("COMPATGATE_CLIENTS_DIR") or ROOT / ".ci" / "node")


def missing_clients(base: Path) -> list[str]:
    """The clients and SDKs not installed under ``base``."""
    missing = [name for name in CLIENTS if not (base / "node_modules" / ".bin" / name).exists()]
    missing += [name for name in _SDKS
                if not (base / "node_modules" / name / "package.json").exists()]
    return missing


def _install(base: Path) -> str | None:
    """Why the clients cannot be had (None once installed); installs them if npm is there."""
    if not missing_clients(base):
        return None
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "Node.js and npm are not installed, so the real clients cannot be installed"
    process = subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, capture_output=True,
                             text=True, timeout=1200, stdin=subprocess.DEVNULL,
                             env={**os.environ, "COMPATGATE_CLIENTS_DIR": str(base)})
    if process.returncode != 0:
        raise RuntimeError(f".ci/install-clients failed ({process.returncode}):\n"
                           f"{process.stdout[-3000:]}\n{process.stderr[-3000:]}")
    missing = missing_clients(base)
    return f".ci/install-clients left {missing} missing" if missing else None


def require_clients() -> Path:
    """The clients' directory, installing them first if needed; skips (fails under
    ``CI=true``) when they cannot be installed because npm is absent."""
    import pytest

    base = clients_dir()
    if base not in _installed:
        try:
            _installed[base] = _install(base)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            _installed[base] = str(exc)
            pytest.fail(str(exc))
    problem = _installed[base]
    if problem is None:
        return base
    if problem.startswith(".ci/install-clients") or os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: the client tests must run)")
    pytest.skip(f"{problem}; run .ci/install-clients (needs npm)")


@dataclass
class Result:
    """How a client run ended."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str

    def ok(self) -> Result:
        """This result, after failing unless the client exited 0."""
        assert self.code == 0, f"{self.argv[0]} exited {self.code}\n{self}"
        return self

    def __str__(self) -> str:
        return f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"


class Sandbox:
    """Runs clients with HOME in ``root/home`` and the working directory ``root/work``."""

    def __init__(self, base: Path, root: Path, timeout: float = 120.0) -> None:
        self.base = base
        self.home = root / "home"
        self.work = root / "work"
        self.timeout = timeout
        self.home.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)

    def binary(self, name: str) -> str:
        return str(self.base / "node_modules" / ".bin" / name)

    def environment(self, **extra: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "LANG": "C.UTF-8", "TERM": "dumb", "NO_COLOR": "1", "TMPDIR": str(self.home)}
        return {**env, **extra}

    def run(self, argv: list[str], env: dict[str, str], *, timeout: float | None = None) -> Result:
        try:
            process = subprocess.run(argv, check=False, env=env, cwd=self.work,
                                     capture_output=True, text=True,
                                     timeout=timeout or self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            raise AssertionError(f"{argv[0]} ran over {exc.timeout} s\n"
                                 f"--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}") from None
        return Result(argv, process.returncode, process.stdout, process.stderr)

    def claude(self, prompt: str, *, base_url: str, key: str, model: str | None = None,
               args: tuple[str, ...] = ("--allowedTools", "Bash", "Read"), **env: str) -> Result:
        """``claude -p prompt``; ``base_url`` is ANTHROPIC_BASE_URL (``/v1/messages`` is
        appended); ``env``: more variables."""
        env = self.environment(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY=key,
                               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
                               DISABLE_AUTOUPDATER="1", DISABLE_TELEMETRY="1",
                               DISABLE_ERROR_REPORTING="1", **env)
        argv = [self.binary("claude"), "-p", prompt, *(("--model", model) if model else ()), *args]
        return self.run(argv, env)

    def codex(self, prompt: str, *, base_url: str, key: str, model: str = "gw-model",
              args: tuple[str, ...] = ("-s", "workspace-write")) -> Result:
        """``codex exec prompt`` with a custom Responses provider at ``base_url`` (requests go
        to ``{base_url}/responses``)."""
        codex_home = self.home / ".codex"
        codex_home.mkdir(exist_ok=True)
        (codex_home / "config.toml").write_text(
            f"model = {json.dumps(model)}\nmodel_provider = \"gateway\"\n"
            "check_for_update_on_startup = false\n\n"
            "[model_providers.gateway]\nname = \"compatgate\"\n"
            f"base_url = {json.dumps(base_url)}\nenv_key = \"COMPATGATE_API_KEY\"\n"
            "wire_api = \"responses\"\n\n"
            "[analytics]\nenabled = false\n\n"
            "[features]\nplugins = false\napps = false\n", encoding="utf-8")
        env = self.environment(CODEX_HOME=str(codex_home), COMPATGATE_API_KEY=key)
        argv = [self.binary("codex"), "exec", "--skip-git-repo-check", "--ephemeral",
                "--color", "never", *args, prompt]
        return self.run(argv, env)

    def gemini(self, prompt: str, *, base_url: str, key: str, model: str = "gemini-2.5-flash",
               args: tuple[str, ...] = ("--yolo",)) -> Result:
        """``gemini -p prompt``; ``base_url`` is GOOGLE_GEMINI_BASE_URL (``/v1beta/models/...``
        is appended)."""
        settings = {"security": {"auth": {"selectedType": "gemini-api-key"}},
                    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
                    "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False}}
        (self.home / ".gemini").mkdir(exist_ok=True)
        (self.home / ".gemini" / "settings.json").write_text(json.dumps(settings), "utf-8")
        env = self.environment(GOOGLE_GEMINI_BASE_URL=base_url, GEMINI_API_KEY=key)
        argv = [self.binary("gemini"), "--skip-trust", "-m", model, *args, "-p", prompt]
        return self.run(argv, env)

    def node(self, script: str, *args: str, **env: str) -> Result:
        """``node tests/clients/node/<script> args...`` with the installed SDKs."""
        environment = self.environment(NODE_PATH=str(self.base / "node_modules"), **env)
        return self.run(["node", str(NODE_SCRIPTS / script), *args], environment)
