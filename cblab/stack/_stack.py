"""`Stack`: the backend and one demo server per variant, as real processes on loopback."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from cblab import CircuitBreakerConfig, ConfigError
from cblab.demo import BREAKERS

from ._control import BackendControl, ControlError, ServerControl

if TYPE_CHECKING:
    from cblab.stores.server import RedisServer

__all__ = ["Stack", "StackError"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding `cblab/`
_SERVER_OPTIONS = {"protected", *BREAKERS, "deadline", "args", "replicas", "shared_state"}
MAX_REPLICAS = 32


class StackError(RuntimeError):
    """A stack process failed to start or died; the message has its log's tail."""


@dataclass
class _Child:
    name: str
    command: list[str]
    log_path: Path
    ready_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    ready: dict[str, Any] = field(default_factory=dict)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class Stack:
    """The live lab: backend + demo servers as child processes on ephemeral loopback ports.

    ::

        with Stack() as stack:                       # or: stack = Stack().start()
            stack.backend.set_faults("users", mode="hang")
            stack.server("protected").status()["github"]["state"]
            stack.mcp_url("unprotected")             # http://127.0.0.1:PORT/mcp

    `servers` names the variants: a sequence of names, or a mapping from name to
    options: `protected` (default: False for names starting with "unprotected",
    True otherwise), `github` / `database` (breaker config dicts),
    `deadline` (seconds), `args` (extra `cblab serve` flags), `replicas` and
    `shared_state` (as below, for this variant only).
    `github` / `database` / `deadline` given to `Stack` apply to every server.

    Replicas: `Stack(("shared",), replicas=3, shared_state=True)` starts a real
    `redis-server` (loopback, ephemeral port, no persistence) and three servers
    "shared@r0".."shared@r2" whose breakers share state through it (namespace =
    the variant). `stack.mcp_urls("shared")` lists their URLs for a load
    generator; every row they log says which replica wrote it (variant "shared@r1").
    Without `shared_state` each replica keeps its own breakers.

    Children run in their own session and exit when this process dies (even by
    SIGKILL, e.g. a Jupyter kernel restart). `stop()` sends SIGTERM, then SIGKILL
    after `stop_timeout`; it runs at interpreter exit too and is safe to call twice.
    Logs go to files in `log_dir` (a temporary directory by default); a start
    failure raises `StackError` quoting the log's tail.
    """

    def __init__(
        self,
        servers: Sequence[str] | Mapping[str, Mapping[str, Any]] = ("protected", "unprotected"),
        *,
        seed: int = 1,
        admin_token: str | None = None,
        log_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        github: Mapping[str, Any] | None = None,
        database: Mapping[str, Any] | None = None,
        deadline: float = 2.0,
        startup_timeout: float = 60.0,
        stop_timeout: float = 5.0,
        python: str | None = None,
        replicas: int = 1,
        shared_state: bool = False,
    ) -> None:
        variants = dict(servers) if isinstance(servers, Mapping) else {n: {} for n in servers}
        if not variants:
            raise ValueError("a Stack needs at least one server variant")
        for name, options in variants.items():
            if not isinstance(name, str) or not name or "/" in name or "@" in name:
                raise ValueError(f"variant names must be non-empty strings without '/' or "
                                 f"'@', got {name!r}")
            unknown = set(options) - _SERVER_OPTIONS
            if unknown:
                raise ValueError(f"variant {name!r}: unknown option(s) {sorted(unknown)}; "
                                 f"known: {sorted(_SERVER_OPTIONS)}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        for name, options in variants.items():  # fail here, not in a child's log
            for breaker in BREAKERS:
                config = {**dict((github if breaker == "github" else database) or {}),
                          **dict(options.get(breaker) or {})}
                try:
                    CircuitBreakerConfig.from_dict(config)
                except ConfigError as exc:
                    raise ConfigError(f"variant {name!r}, {breaker} breaker: {exc}") from None
        self._groups: dict[str, list[str]] = {}  # variant -> its replicas' names
        self._variants: dict[str, dict[str, Any]] = {}  # one entry per server process
        for name, options in variants.items():
            count = options.get("replicas", replicas)
            shared = options.get("shared_state", shared_state)
            if isinstance(count, bool) or not isinstance(count, int) or not (
                1 <= count <= MAX_REPLICAS
            ):
                raise ValueError(f"variant {name!r}: replicas must be an integer from 1 to "
                                 f"{MAX_REPLICAS}, got {count!r}")
            if not isinstance(shared, bool):
                raise ValueError(f"variant {name!r}: shared_state must be True or False")
            if shared and not options.get("protected", not name.startswith("unprotected")):
                raise ValueError(f"variant {name!r}: an unprotected variant cannot share state")
            if count == 1 and not shared:
                self._groups[name] = [name]
                self._variants[name] = dict(options)
                continue
            self._groups[name] = [f"{name}@r{i}" for i in range(count)]
            for i, child in enumerate(self._groups[name]):
                self._variants[child] = {**options, "variant": name, "replica": f"r{i}",
                                         "shared_state": shared}
        self.redis: RedisServer | None = None  # while shared-state variants run
        self.seed = seed
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.host = host
        self._defaults: dict[str, Any] = {"github": dict(github or {}), "database": dict(database or {}),
                          "deadline": deadline}
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.python = python or sys.executable
        self._log_dir_arg = Path(log_dir) if log_dir is not None else None
        self.log_dir: Path | None = None
        self._backend: _Child | None = None
        self._servers: dict[str, _Child] = {}
        self._controls: dict[str, ServerControl] = {}
        self._backend_control: BackendControl | None = None
        self._lock = threading.Lock()
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def variants(self) -> list[str]:
        """Every server process's name ("protected", or "shared@r0", "shared@r1"...)."""
        return list(self._variants)

    def replicas(self, variant: str) -> list[str]:
        """The names of a variant's replicas (just the variant, when it has one)."""
        try:
            return list(self._groups[variant])
        except KeyError:
            raise KeyError(f"no variant {variant!r}; known: {list(self._groups)}") from None

    def mcp_urls(self, variant: str) -> list[str]:
        """MCP URLs of a variant's replicas, for `LoadGenerator([...])`."""
        return [self.mcp_url(name) for name in self.replicas(variant)]

    @property
    def redis_url(self) -> str | None:
        """The shared-state Redis URL (None when no variant shares state)."""
        return self.redis.url if self.redis is not None else None

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> Stack:
        """Start the backend, then every server; return once all answer /health."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + path if path else "")
        env["PYTHONUNBUFFERED"] = "1"
        env["FASTMCP_ENABLE_RICH_TRACEBACKS"] = "false"
        env["FASTMCP_SHOW_SERVER_BANNER"] = "false"
        env["CBLAB_BACKEND_TOKEN"] = self.admin_token
        env["CBLAB_ADMIN_TOKEN"] = self.admin_token
        return env

    def _start(self) -> None:
        if self._log_dir_arg is not None:
            self._log_dir_arg.mkdir(parents=True, exist_ok=True)
            self.log_dir = self._log_dir_arg
        else:
            self.log_dir = Path(tempfile.mkdtemp(prefix="cblab-stack-"))
        log_dir = self.log_dir
        env = self._env()
        parent = str(os.getpid())
        deadline = time.monotonic() + self.startup_timeout

        if any(o.get("shared_state") for o in self._variants.values()):
            from cblab.stores.server import RedisServer

            self.redis = RedisServer(start_timeout=max(deadline - time.monotonic(), 1.0))
            self.redis.start()  # before the servers: they connect at startup
        backend = self._backend = _Child(
            "backend",
            [self.python, "-m", "cblab.stack.child", "--parent", parent, "backend",
             "--host", self.host, "--seed", str(self.seed)],
            log_dir / "backend.log", log_dir / "backend.ready.json",
        )
        backend.command += ["--ready-file", str(backend.ready_path)]
        self._spawn(backend, env)
        # The servers start at once (loading fastmcp takes seconds) and wait for the
        # backend's ready file to learn its URLs.
        for name, options in self._variants.items():
            ready_path = log_dir / f"server-{name}.ready.json"
            child = _Child(name, self._server_command(name, options, backend.ready_path,
                                                      parent, ready_path),
                           log_dir / f"server-{name}.log", ready_path)
            self._servers[name] = child
            self._spawn(child, env)
        urls = self._wait_ready(backend, deadline)
        self._backend_control = BackendControl(
            urls["control"], self.admin_token,
            {"users": urls["users"], "orders": urls["orders"]},
        )
        for name, child in self._servers.items():
            ready = self._wait_ready(child, deadline)
            control = ServerControl(ready["url"], self.admin_token, name)
            self._wait_healthy(child, control, deadline)
            self._controls[name] = control

    def _server_command(self, name: str, options: Mapping[str, Any], backend_ready: Path,
                        parent: str, ready_path: Path) -> list[str]:
        protected = options.get("protected", not name.startswith("unprotected"))
        command = [
            self.python, "-m", "cblab.server", "--host", self.host, "--port", "0",
            "--backend-ready-file", str(backend_ready),
            "--variant", options.get("variant", name), "--exit-with-parent", parent,
            "--deadline", repr(float(options.get("deadline", self._defaults["deadline"]))),
            "--ready-file", str(ready_path),
        ]
        if not protected:
            command.append("--unprotected")
        if "replica" in options:
            command += ["--replica", options["replica"]]
        if options.get("shared_state"):
            assert self.redis is not None
            command += ["--shared-state", self.redis.url,
                        "--shared-namespace", options["variant"]]
        for breaker in BREAKERS:
            config = {**self._defaults[breaker], **dict(options.get(breaker) or {})}
            if config:
                command += [f"--{breaker}-config", json.dumps(config)]
        command += [str(arg) for arg in options.get("args", ())]
        return command

    def _spawn(self, child: _Child, env: dict[str, str]) -> None:
        with contextlib.suppress(FileNotFoundError):
            child.ready_path.unlink()
        child.log_file = open(child.log_path, "ab")  # noqa: SIM115 - closed in stop()
        child.log_file.write(f"$ {' '.join(child.command)}\n".encode())
        child.log_file.flush()
        child.process = subprocess.Popen(
            child.command, stdin=subprocess.DEVNULL, stdout=child.log_file,
            stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )

    def _fail(self, child: _Child, why: str) -> StackError:
        return StackError(f"{child.name} {why}; its log ({child.log_path}) ends with:\n"
                          f"{_tail(child.log_path)}")

    def _wait_ready(self, child: _Child, deadline: float) -> dict[str, Any]:
        assert child.process is not None
        while True:
            if child.ready_path.exists():
                with contextlib.suppress(ValueError, OSError):
                    child.ready = json.loads(child.ready_path.read_text(encoding="utf-8"))
                    return child.ready
            code = child.process.poll()
            if code is not None:
                raise self._fail(child, f"exited with status {code} while starting")
            if time.monotonic() > deadline:
                raise self._fail(child, f"was not ready within {self.startup_timeout:g} s")
            time.sleep(0.02)

    def _wait_healthy(self, child: _Child, control: ServerControl, deadline: float) -> None:
        while True:
            try:
                control.health()
                return
            except (httpx.HTTPError, RuntimeError) as exc:
                error = exc
            if child.process is not None and child.process.poll() is not None:
                raise self._fail(child, "exited while starting")
            if time.monotonic() > deadline:
                raise self._fail(child, f"did not answer /health ({error})")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after `stop_timeout`). Idempotent."""
        with self._lock:
            children = [*self._servers.values(), *([self._backend] if self._backend else [])]
            self._servers, self._backend = {}, None
            controls = [*self._controls.values(), self._backend_control]
            self._controls, self._backend_control = {}, None
            self._started = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        for control in controls:
            if control is not None:
                control.close()
        for child in children:
            self._signal(child, signal.SIGTERM)
        redis, self.redis = self.redis, None
        deadline = time.monotonic() + self.stop_timeout
        for child in children:
            process = child.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                self._signal(child, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=2.0)
            if child.log_file is not None:
                child.log_file.close()
            with contextlib.suppress(OSError):
                child.ready_path.unlink()
        if redis is not None:
            redis.close()

    @staticmethod
    def _signal(child: _Child, signum: int) -> None:
        process = child.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signum)  # its own session: the whole group
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    async def astart(self) -> Stack:
        """`start()` in a worker thread, so a running loop (a notebook) is not blocked."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        for control in [*self._controls.values(), self._backend_control]:
            if control is not None:
                await control.aclose()
        await asyncio.to_thread(self.stop)

    async def __aenter__(self) -> Stack:
        return await self.astart()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.astop()

    # --- where things are ---------------------------------------------------------------

    def _need(self) -> None:
        if not self._started or self._backend_control is None:
            raise RuntimeError("the stack is not running: call start() or use `with Stack()`")

    @property
    def backend(self) -> BackendControl:
        """The backend's control API client (`set_faults`, `play_scenario`, `stats`...)."""
        self._need()
        assert self._backend_control is not None
        return self._backend_control

    def backend_url(self, service: str) -> str:
        """Base URL of a backend service: "users" or "orders"."""
        return self.backend.url(service)

    @property
    def control_url(self) -> str:
        return self.backend.base_url

    def server(self, variant: str) -> ServerControl:
        """Admin/events client of one server variant."""
        self._need()
        try:
            return self._controls[variant]
        except KeyError:
            raise KeyError(f"no server variant {variant!r}; known: {self.variants}") from None

    def servers(self) -> Iterable[ServerControl]:
        self._need()
        return list(self._controls.values())

    def server_url(self, variant: str) -> str:
        return self.server(variant).url

    def mcp_url(self, variant: str) -> str:
        return self.server(variant).mcp_url

    def pid(self, name: str) -> int | None:
        """Process id of "backend" or a server variant (None when not running)."""
        child = self._backend if name == "backend" else self._servers.get(name)
        return child.process.pid if child is not None and child.process is not None else None

    def log_path(self, name: str) -> Path:
        """Log file of "backend" or a server variant."""
        if self.log_dir is None:
            raise RuntimeError("the stack was never started")
        return self.log_dir / ("backend.log" if name == "backend" else f"server-{name}.log")

    def reset(self) -> None:
        """Back to a clean slate between experiments: healthy backend, scenario stopped,
        stats zeroed, every breaker reset."""
        backend = self.backend
        with contextlib.suppress(ControlError):
            backend.stop_scenario()
        backend.clear_faults()
        backend.reset_stats()
        for control in self._controls.values():
            control.reset()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"Stack({self.variants}, {state}, log_dir={self.log_dir})"

