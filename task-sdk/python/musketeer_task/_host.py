"""Wrappers over the ``musketeer:task/host`` imports (the same API as the Rust SDK's)."""

import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HttpResponse:
    """A completed HTTP exchange; any status counts as completed, including 4xx and 5xx."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        """The first header with this name, compared case-insensitively."""
        wanted = name.lower()
        return next((v for n, v in self.headers if n.lower() == wanted), None)

    def text(self) -> str:
        """The body as UTF-8 text (raises ``UnicodeDecodeError`` otherwise)."""
        return self.body.decode("utf-8")


class HttpError(Exception):
    """Why the host did not complete a GET; ``str()`` reads as the Rust SDK's ``Display``.

    ``kind`` is one of ``denied``, ``timeout``, ``too-large``, ``too-many-requests``,
    ``failed`` (the WIT variant's cases); ``detail`` is the reason or the byte cap, if any.
    """

    def __init__(self, kind: str, detail: str | int | None = None) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(_describe(kind, detail))


def _describe(kind: str, detail: str | int | None) -> str:
    match kind:
        case "denied":
            return f"request denied by the host: {detail}"
        case "timeout":
            return "request timed out"
        case "too-large":
            return f"response larger than the {detail}-byte cap"
        case "too-many-requests":
            return "request budget for this run used up"
        case _:
            return f"request failed: {detail}"


try:
    from componentize_py_types import Err
    from wit_world.imports import host as _wit
except ImportError:  # outside the sandbox: no host, as in the Rust SDK's native build
    _wit = None  # type: ignore[assignment]


def http_get(url: str, headers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
    """GETs ``url`` through the host with the given request headers.

    The host allows only URLs on the manifest's allowlist, follows redirects (re-checking each
    hop) and enforces a per-request timeout, a response size cap and a per-run request budget.
    Raises ``HttpError`` when the GET does not complete; outside the sandbox it always does.
    """
    if _wit is None:
        raise HttpError(
            "failed", "no musketeer host: http_get works only inside the wasm32-wasip2 sandbox"
        )
    try:
        response = _wit.http_get(url, list(headers))
    except Err as error:
        raise _from_wit(error.value) from None
    return HttpResponse(response.status, list(response.headers), bytes(response.body))


def _from_wit(error: object) -> HttpError:
    assert _wit is not None
    if isinstance(error, _wit.HttpError_Denied):
        return HttpError("denied", error.value)
    if isinstance(error, _wit.HttpError_Timeout):
        return HttpError("timeout")
    if isinstance(error, _wit.HttpError_TooLarge):
        return HttpError("too-large", error.value)
    if isinstance(error, _wit.HttpError_TooManyRequests):
        return HttpError("too-many-requests")
    if isinstance(error, _wit.HttpError_Failed):
        return HttpError("failed", error.value)
    return HttpError("failed", f"unknown host error {error!r}")


def progress(fraction: float) -> None:
    """Reports progress as a fraction in [0, 1]; the host may ignore out-of-range values."""
    if _wit is not None:
        _wit.progress(float(fraction))


def log(line: str) -> None:
    """Adds one line to the run's log (the host caps its size)."""
    if _wit is not None:
        _wit.log(line)
    else:
        # Native runs are tests: keep the line visible there.
        print(f"[task log] {line}", file=sys.stderr)
