"""A real musketeer cluster on loopback for the tests: ``musketeer-server`` and ``musketeer join``
processes, each killed and reaped when its guard closes (pass or fail), and conditions waited on
with deadlines.

The binaries come from ``MUSKETEER_BIN`` and ``MUSKETEER_SERVER_BIN`` (set by
``cargo xtask test``), by default ``target/debug/musketeer`` and ``target/debug/musketeer-server``
of this repository; task modules from ``target/wasm-tasks/wasm32-wasip2/release/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
#: How long any one condition may take before the test fails.
DEADLINE_SECONDS = 120.0

T = TypeVar("T")


def binary(variable: str, name: str) -> Path:
    path = Path(os.environ.get(variable) or REPO / "target" / "debug" / name)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `cargo build -p musketeer-client -p musketeer-server` "
            f"or set {variable}"
        )
    return path


def module(task: str) -> Path:
    """A task's .wasm component, built by `cargo build -p musketeer-task-artifacts`."""
    path = (
        REPO / "target" / "wasm-tasks" / "wasm32-wasip2" / "release" / f"musketeer_task_{task}.wasm"
    )
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `cargo build -p musketeer-task-artifacts`")
    return path


def wait_for(what: str, condition: Callable[[], T | None], deadline: float = DEADLINE_SECONDS) -> T:
    """Polls ``condition`` until it returns something other than None; fails after ``deadline``."""
    give_up = time.monotonic() + deadline
    while True:
        value = condition()
        if value is not None:
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")
        time.sleep(0.05)


class Process:
    """A child process whose stdout and stderr lines are collected by threads."""

    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self._lock = threading.Lock()
        environment = dict(os.environ, MUSKETEER_LOG="warn")
        self.popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for stream in (self.popen.stdout, self.popen.stderr):
            threading.Thread(target=self._follow, args=(stream,), daemon=True).start()

    def _follow(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def wait_line(self, what: str, matches: Callable[[str], bool]) -> str:
        def found() -> str | None:
            line = next((line for line in self.snapshot() if matches(line)), None)
            if line is None and self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.popen.returncode}) before {what}:\n"
                    + "\n".join(self.snapshot()[-20:])
                )
            return line

        return wait_for(f"{self.name}: {what}", found)

    def kill(self) -> None:
        """SIGKILL and reap (nothing left behind, whatever the test did)."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()


def run(args: Sequence[object], env: dict[str, str] | None = None) -> str:
    """Runs a command to completion; its stdout. Fails with its stderr."""
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        timeout=DEADLINE_SECONDS,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise AssertionError(f"{args[0]} {args[1]} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1].strip()


@dataclass
class Project:
    """A running server with its tokens."""

    name: str
    data: Path
    url: str
    admin: str
    researcher: str
    publisher: str
    server: Process


class Cluster:
    """Starts servers and volunteers under ``workdir``; :meth:`close` kills them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.musketeer = binary("MUSKETEER_BIN", "musketeer")
        self.server_bin = binary("MUSKETEER_SERVER_BIN", "musketeer-server")
        self.processes: list[Process] = []
        self.keys = workdir / "keys"
        run([self.musketeer, "keys", "generate", "--out", self.keys])

    def close(self) -> None:
        for process in self.processes:
            process.kill()

    def project(self, name: str) -> Project:
        """``musketeer-server init`` trusting the cluster's key, tokens, and ``serve`` on a
        free loopback port (port 0: the server says which it got)."""
        data = self.workdir / name
        init = run(
            [self.server_bin, "init", "--data-dir", data, "--project-name", name]
            + ["--trust-key", self.keys / "musketeer.pub"]
        )

        def token(role: str) -> str:
            return last_line(
                run([self.server_bin, "token", "create", "--data-dir", data, "--role", role])
            )

        researcher, publisher = token("researcher"), token("publisher")
        server, url = self._serve(name, data, "127.0.0.1:0")
        return Project(name, data, url, last_line(init), researcher, publisher, server)

    def stop_server(self, project: Project) -> None:
        """Kills the project's server (its store stays)."""
        project.server.kill()

    def start_server(self, project: Project) -> None:
        """Serves the project's store again on the same address."""
        address = project.url.removeprefix("http://")
        project.server, url = self._serve(project.name, project.data, address)
        assert url == project.url, f"the server came back at {url}, not {project.url}"

    def _serve(self, name: str, data: Path, address: str) -> tuple[Process, str]:
        server = self._spawn(
            name, [str(self.server_bin), "serve", "--data-dir", str(data), "--listen", address]
        )
        line = server.wait_line("listening", lambda line: "listening on http://" in line)
        return server, line.rsplit(" ", 1)[-1]

    def publish(
        self,
        project: Project,
        task: str,
        app: str,
        version: str = "1.0.0",
        allow_http: Sequence[str] = (),
    ) -> None:
        """Signs the task module as ``app`` ``version`` (allowed to GET ``allow_http``
        prefixes) and publishes it."""
        manifest = self.workdir / f"{app}-{version}-{project.name}.json"
        wasm = module(task)
        allow = [arg for prefix in allow_http for arg in ("--allow-http", prefix)]
        run(
            [self.musketeer, "sign", "--key", self.keys / "musketeer.key", "--module", wasm]
            + ["--app", app, "--version", version, "--out", manifest]
            + allow
        )
        run(
            [self.musketeer, "publish", "--server", project.url]
            + ["--manifest", manifest, "--module", wasm],
            env={"MUSKETEER_TOKEN": project.publisher},
        )

    def join(self, project: Project, name: str, slots: int = 2) -> Process:
        """A ``musketeer join`` volunteer, returned once it waits for work."""
        volunteer = self._spawn(
            name,
            [str(self.musketeer), "join", project.url, "--name", name, "--slots", str(slots)]
            + ["--data-dir", str(self.workdir / "volunteers" / name), "--log-format", "json"]
            + ["--poll-wait-ms", "2000", "--max-backoff-ms", "1000"],
        )
        volunteer.wait_line("waiting for work", lambda line: _event(line) == "idle")
        return volunteer

    def _spawn(self, name: str, args: list[str]) -> Process:
        process = Process(name, args)
        self.processes.append(process)
        return process


def _event(line: str) -> str | None:
    with contextlib.suppress(ValueError):
        value = json.loads(line)
        if isinstance(value, dict):
            event = value.get("event")
            return event if isinstance(event, str) else None
    return None


@contextlib.contextmanager
def cluster(workdir: Path) -> Iterator[Cluster]:
    started = Cluster(workdir)
    try:
        yield started
    finally:
        started.close()
