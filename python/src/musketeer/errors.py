"""Exceptions raised by the musketeer client.

Every exception is a :class:`MusketeerError`, so ``except MusketeerError`` catches them all:

- :class:`MusketeerError` itself: the server refused a request and said why, with its
  ``{"error": code, "message": text}`` body (``.status`` is the HTTP status).
- :class:`ServerUnreachable`: no answer (refused connection, unknown host, time-out).
- :class:`UnexpectedAnswer`: an answer this client cannot read (not the musketeer API?).
- :class:`TaskFailed`: a work unit failed or was cancelled, raised by ``AsyncResult.get()``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MusketeerError", "ServerUnreachable", "TaskFailed", "UnexpectedAnswer"]


class MusketeerError(Exception):
    """The server refused a request (or, in subclasses, no usable answer came).

    Attributes:
        code: the server's machine-readable error code (``"unauthorized"``, ``"not_found"``,
            ``"conflict"`` ... see docs/protocol.md), or this client's own code in subclasses.
        status: the HTTP status of the answer; ``None`` when there was no answer.
        message: what went wrong, meant for humans.
        hint: what to do about it, when the client knows.
    """

    code: str
    status: int | None
    message: str
    hint: str | None

    def __init__(
        self, code: str, message: str, *, status: int | None = None, hint: str | None = None
    ) -> None:
        self.code = code
        self.status = status
        self.message = message
        self.hint = hint if hint is not None else _hint_for(code)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        head = f"{self.message} ({self.status} {self.code})" if self.status else self.message
        return f"{head}; {self.hint}" if self.hint else head

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"message={self.message!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields would be lost by Exception's default (args only): keep them, so
        # the error survives pickling (multiprocessing, concurrent.futures).
        return (type(self), (self.code, self.message), {"status": self.status, "hint": self.hint})


class ServerUnreachable(MusketeerError):
    """No answer: the connection was refused or timed out, or the host is unknown.

    ``message`` names the server and the one root cause (e.g. ``Connection refused``); ``hint``
    says what to check.
    """


class UnexpectedAnswer(MusketeerError):
    """The server answered something this client cannot read (wrong URL, or not a musketeer
    server, or a proxy's error page)."""


class TaskFailed(MusketeerError):
    """A work unit ended without a result: it ``failed`` (its error says why) or was
    ``cancelled``.

    Attributes:
        unit_id: the unit.
        state: ``"failed"`` or ``"cancelled"``.
        error: the server's reason, e.g. the task's own error message.
    """

    unit_id: int
    state: str
    error: str

    def __init__(self, unit_id: int, state: str, error: str) -> None:
        self.unit_id = unit_id
        self.state = state
        self.error = error
        super().__init__(f"unit_{state}", f"unit {unit_id} {state}: {error}", hint="")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.unit_id, self.state, self.error))


def _hint_for(code: str) -> str | None:
    """What a user can do about a server error code (None: the message says it all)."""
    return {
        "unauthorized": "check the token (Client(url, token)); ask the project's operator for a "
        "researcher token if it was revoked or expired",
        "forbidden": "this token's role or app scope does not allow it; ask the operator for a "
        "token with the right role",
        "rate_limited": "wait a minute and retry",
        "unavailable": "the server cannot serve this now; retry later",
    }.get(code)
