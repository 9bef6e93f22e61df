"""The HTTP client: one :class:`Client` per server and token."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import httpx

from .batch import Batch
from .errors import MusketeerError, ServerUnreachable, UnexpectedAnswer
from .models import JSON, AppVersion, BatchStatus, DeletedBatch, Replication, ResultRow
from .tasks import Task

__all__ = ["Client"]

API = "/api/v1"
#: Most inputs in one batch (the server's limit).
MAX_INPUTS = 1_000_000


class Client:
    """A researcher's connection to a musketeer server.

    >>> client = Client("http://project.example.org:8080", "mku_...")
    >>> batch = client.submit("primes", [{"from": 1, "to": 100}], quorum=2)
    >>> batch.wait()
    >>> [row.output for row in batch.results()]

    ``url`` and ``token`` default to the ``MUSKETEER_SERVER`` and ``MUSKETEER_TOKEN``
    environment variables, as for the ``musketeer`` command. ``timeout`` (seconds) bounds each
    request; ``transport`` replaces httpx's (e.g. ``httpx.MockTransport`` in tests). Use it as a
    context manager, or call :meth:`close`, to release its connections.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = url if url is not None else os.environ.get("MUSKETEER_SERVER")
        if not url:
            raise ValueError(
                "no server URL: pass Client(url, token) or set MUSKETEER_SERVER, "
                "e.g. http://project.example.org:8080"
            )
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"server URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        token = token if token is not None else os.environ.get("MUSKETEER_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.url + API, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Closes the connections (the client cannot be used afterwards)."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # --- Apps -----------------------------------------------------------------------------

    def apps(self) -> list[AppVersion]:
        """Every published app version, by app then version."""
        answer = self._request("GET", "/apps")
        versions = answer.get("versions") if isinstance(answer, dict) else None
        if not isinstance(versions, list):
            raise UnexpectedAnswer("invalid_answer", "the app list has no 'versions'")
        return [AppVersion.from_json(item) for item in versions]

    def task(self, app: str, **options: Any) -> Task:
        """The app as a Celery-style task: ``client.task("primes").apply_async(input).get()``.

        ``options`` are :meth:`submit`'s keyword arguments (``version``, ``quorum``, ...), used
        for every batch the task submits.
        """
        return Task(self, app, **options)

    # --- Batches --------------------------------------------------------------------------

    def submit(
        self,
        app: str,
        inputs: Iterable[JSON] | Iterable[bytes],
        *,
        raw: bool = False,
        quorum: int | None = None,
        version: str | None = None,
        deadline: float | timedelta | None = None,
        priority: int = 0,
        label: str | None = None,
        replication: Replication | None = None,
    ) -> Batch:
        """Submits one work unit per input (any JSON value, or raw bytes) and returns the batch.

        Args:
            app: the app's name (see :meth:`apps`).
            inputs: the units' inputs, in order; results come back in the same order. JSON
                values reach the task as compact JSON; ``bytes`` (raw inputs, like
                ``musketeer submit --lines``) reach it unchanged, with no quoting or escapes.
            raw: every input is raw: ``bytes``, or ``str`` sent as its UTF-8 bytes. Inputs
                that are all ``bytes`` are raw without it.
            quorum: how many volunteers must return byte-identical outputs before one is
                accepted (default 1).
            version: the app version to run (default: the current one).
            deadline: how long one volunteer has for a unit before it goes to another, in
                seconds or as a timedelta (default 1 hour).
            priority: higher-priority batches are handed out first.
            label: a note shown with the batch.
            replication: the other BOINC settings (``quorum`` and ``deadline`` override its
                fields).

        The batch is durable on the server when this returns.
        """
        if isinstance(inputs, (str, bytes, Mapping)):
            raise TypeError(
                f"inputs is one {type(inputs).__name__}, not a list of inputs: "
                "for a single input pass [value]"
            )
        inputs = list(inputs)
        if not 1 <= len(inputs) <= MAX_INPUTS:
            raise ValueError(f"a batch needs 1 to {MAX_INPUTS} inputs, got {len(inputs)}")
        raw_inputs = _raw_inputs(inputs, raw)
        settings = replication if replication is not None else Replication()
        if quorum is not None:
            settings = dataclasses.replace(settings, min_quorum=quorum)
        if deadline is not None:
            seconds = deadline.total_seconds() if isinstance(deadline, timedelta) else deadline
            settings = dataclasses.replace(settings, delay_bound_ms=round(seconds * 1000))
        body: dict[str, Any] = {
            "app": app,
            # Raw inputs travel as base64; a server without them refuses the body for its
            # missing "inputs" rather than storing them as JSON.
            **({"raw_inputs": raw_inputs} if raw_inputs is not None else {"inputs": inputs}),
            "replication": settings.to_json(),
            "priority": priority,
        }
        if version is not None:
            body["version"] = version
        if label is not None:
            body["label"] = label
        try:
            # NaN and infinities are not JSON: refused here rather than by the server.
            encoded = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"every input must be a JSON value (dict, list, str, int, float, bool or None): "
                f"{error}"
            ) from None
        try:
            answer = self._request("POST", "/batches", content=encoded)
        except MusketeerError as error:
            if raw_inputs is not None and _lacks_raw_inputs(error):
                raise MusketeerError(
                    "server_too_old",
                    f"the musketeer server at {self.url} is too old for raw (bytes) inputs",
                    status=error.status,
                    hint="upgrade musketeer-server, or submit JSON values (e.g. str) instead",
                ) from None
            raise
        return Batch.from_submit_answer(self, answer)

    def batch(self, batch_id: int) -> Batch:
        """A batch submitted earlier (e.g. by ``musketeer submit``), by its id."""
        return Batch(self, batch_id)

    def batches(self) -> list[BatchStatus]:
        """The token's batches, newest first (an admin token sees every batch)."""
        answer = self._request("GET", "/batches")
        items = answer.get("batches") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise UnexpectedAnswer("invalid_answer", "the batch list has no 'batches'")
        return [BatchStatus.from_json(item) for item in items]

    def batch_status(self, batch_id: int, *, wait: float | None = None) -> BatchStatus:
        """``GET /batches/{id}``; with ``wait`` (seconds), a long poll: the server answers when
        the batch ends or ``wait`` passes (at most 30 s), whichever comes first."""
        path = f"/batches/{int(batch_id)}"
        if not wait or wait <= 0:
            return BatchStatus.from_json(self._request("GET", path))
        wait_ms = max(1, int(wait * 1000))
        return BatchStatus.from_json(
            # The request may take the whole wait: its timeout runs on top of it.
            self._request("GET", path, params={"wait_ms": wait_ms}, timeout=self._timeout + wait)
        )

    def cancel_batch(self, batch_id: int) -> BatchStatus:
        """``POST /batches/{id}/cancel``."""
        return BatchStatus.from_json(self._request("POST", f"/batches/{int(batch_id)}/cancel"))

    def delete_batch(self, batch_id: int) -> DeletedBatch:
        """``DELETE /batches/{id}``."""
        return DeletedBatch.from_json(self._request("DELETE", f"/batches/{int(batch_id)}"))

    def batch_results(self, batch_id: int) -> Iterator[ResultRow]:
        """Streams ``GET /batches/{id}/results?format=jsonl``, one row per unit."""
        path = f"/batches/{int(batch_id)}/results"
        with (
            self._transport_errors(),
            self._http.stream("GET", path, params={"format": "jsonl"}) as response,
        ):
            if response.is_error:
                response.read()
                raise _refusal(response)
            for line in response.iter_lines():
                if line.strip():
                    yield ResultRow.from_json(_decode(line, "a result row"))

    # --- HTTP -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One request (``content``: a JSON body; ``timeout``: seconds instead of the client's);
        its decoded JSON answer, or the server's refusal as an exception."""
        headers = {"Content-Type": "application/json"} if content is not None else None
        with self._transport_errors():
            response = self._http.request(
                method,
                path,
                content=content,
                headers=headers,
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        if response.is_error:
            raise _refusal(response)
        return _decode(response.text, f"the answer to {method} {path}")

    @contextlib.contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """Turns a transport failure into :class:`ServerUnreachable` with its one root cause."""
        try:
            yield
        except httpx.TimeoutException as error:
            raise ServerUnreachable(
                "timeout",
                f"no answer from the musketeer server at {self.url} within {self._timeout:g} s "
                f"({_root_cause(error)})",
                hint="the server may be overloaded or the network slow: retry, or pass a larger "
                "timeout= to Client",
            ) from None
        except httpx.TransportError as error:
            raise ServerUnreachable(
                "unreachable",
                f"cannot reach the musketeer server at {self.url}: {_root_cause(error)}",
                hint="check the URL (scheme, host and port) and that musketeer-server is "
                "running there",
            ) from None


def _refusal(response: httpx.Response) -> MusketeerError:
    """The server's ``{"error", "message"}`` answer as an exception (or what it sent instead)."""
    try:
        body = json.loads(response.text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body.get("message")
        return MusketeerError(
            body["error"],
            message if isinstance(message, str) else body["error"],
            status=response.status_code,
        )
    snippet = " ".join(response.text.split())[:200] or response.reason_phrase
    return UnexpectedAnswer(
        f"http_{response.status_code}",
        f"{response.request.method} {response.url} answered {response.status_code}: {snippet}",
        status=response.status_code,
        hint="is this the URL of a musketeer server (not of a proxy or another service)?",
    )


def _decode(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise UnexpectedAnswer(
            "invalid_answer",
            f"{what} is not JSON: {' '.join(text.split())[:200]!r}",
            hint="is this the URL of a musketeer server?",
        ) from None


def _root_cause(error: BaseException) -> str:
    """The innermost cause's text, e.g. ``Connection refused`` rather than every wrapper's."""
    innermost: BaseException = error
    seen = {id(error)}
    while True:
        inner = innermost.__cause__ or innermost.__context__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        innermost = inner
    for candidate in (innermost, error):
        if isinstance(candidate, OSError) and candidate.strerror:
            return candidate.strerror
    text = str(innermost) or str(error) or type(error).__name__
    # "[Errno 111] Connection refused" -> "Connection refused"
    if text.startswith("[Errno") and "] " in text:
        text = text.split("] ", 1)[1]
    return text


def _raw_inputs(inputs: list[Any], raw: bool) -> list[str] | None:
    """The inputs as base64 raw inputs when ``raw`` or when every input is bytes; None when
    they are JSON values."""
    is_bytes = [isinstance(item, (bytes, bytearray, memoryview)) for item in inputs]
    if not raw and not all(is_bytes):
        if any(is_bytes):
            raise TypeError(
                "inputs mix bytes and JSON values: give all bytes (raw inputs, handed to the "
                "task unchanged) or all JSON values"
            )
        return None
    encoded = []
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            data = item.encode()
        elif isinstance(item, (bytes, bytearray, memoryview)):
            data = bytes(item)
        else:
            raise TypeError(
                f"raw inputs are bytes or str; inputs[{index}] is {type(item).__name__}"
            )
        encoded.append(base64.b64encode(data).decode("ascii"))
    return encoded


def _lacks_raw_inputs(error: MusketeerError) -> bool:
    """Whether a submit was refused by a server that predates raw inputs: it reads a body
    without "inputs" as malformed."""
    return error.code == "invalid_json" and "missing field `inputs`" in error.message
