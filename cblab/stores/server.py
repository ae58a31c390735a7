"""A throwaway `redis-server` on a loopback port: for tests, the Stack and benchmarks.

Started with persistence off (`--save "" --appendonly no`), polled for readiness
with a deadline, and stopped (or killed with SIGKILL, paused with SIGSTOP) by pid.
Restarting keeps the same port, so clients can re-join the shared state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["RedisServer", "RedisServerError", "free_port"]


class RedisServerError(RuntimeError):
    """redis-server is missing, failed to start, or did not answer in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: SIGKILL it when its parent dies (Linux), so a killed kernel or
    test run leaves no redis-server behind."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _ping(host: str, port: int, password: str | None, timeout: float) -> bool:
    """One RESP PING over a raw socket (no client library needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            if password is not None:
                pw = password.encode()
                s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw))
                if not s.recv(64).startswith(b"+OK"):
                    return False
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on 127.0.0.1.

    >>> with RedisServer() as server:            # doctest: +SKIP
    ...     url = server.url                     # redis://127.0.0.1:PORT/0
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        password: str | None = None,
        executable: str = "redis-server",
        start_timeout: float = 10.0,
    ) -> None:
        found = shutil.which(executable)
        if found is None:
            raise RedisServerError(
                f"{executable!r} not found on PATH; install it with `make system-deps` "
                "(Debian package redis-server)"
            )
        self.executable = found
        self.host = host
        self.port = port or free_port(host)
        self.password = password
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="cblab-redis-"))

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> RedisServer:
        if self.process is not None and self.process.poll() is None:
            return self
        args = [
            self.executable, "--port", str(self.port), "--bind", self.host,
            "--save", "", "--appendonly", "no", "--dir", str(self._dir),
            "--protected-mode", "yes", "--loglevel", "warning",
        ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        log = open(self._dir / "redis.log", "ab")  # noqa: SIM115 - the child keeps it
        # PR_SET_PDEATHSIG follows the parent *thread*: only from the main thread
        main = threading.current_thread() is threading.main_thread()
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent if main else None)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with {self.process.returncode}: {self.log_tail()}"
                )
            if _ping(self.host, self.port, self.password, 0.5):
                return self
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(
            f"redis-server on port {self.port} not ready within {self.start_timeout}s"
        )

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self._dir / "redis.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL, as a crash would (`kill -9`)."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(5)

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> RedisServer:
        """Kill, then start again on the same port (empty: persistence is off)."""
        self.kill()
        self.process = None
        return self.start()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
