"""The server's answers as typed, read-only records (wire format: docs/protocol.md)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import UnexpectedAnswer

__all__ = [
    "AppVersion",
    "BatchState",
    "BatchStatus",
    "DeletedBatch",
    "Limits",
    "Replication",
    "ResultRow",
    "UnitCounts",
    "UnitState",
]

#: A work unit's state.
UnitState = Literal["queued", "running", "done", "failed", "cancelled"]
#: A batch's state: ``running`` until every unit is done or failed (``finished``), or cancelled.
BatchState = Literal["running", "finished", "cancelled"]

JSON = Any
"""A JSON value as :mod:`json` decodes it."""


def _field(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``data[name]`` checked against ``kind``; a readable error if the server sent otherwise."""
    value = data.get(name) if isinstance(data, Mapping) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UnexpectedAnswer(
            "invalid_answer", f"the server's {what} has no valid {name!r}: {str(data)[:200]}"
        )
    return value


@dataclass(frozen=True)
class Limits:
    """Resource limits an app version was signed with."""

    fuel: int
    memory_bytes: int
    wall_time_ms: int
    output_bytes: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Limits:
        return cls(
            fuel=_field(data, "fuel", int, "limits"),
            memory_bytes=_field(data, "memory_bytes", int, "limits"),
            wall_time_ms=_field(data, "wall_time_ms", int, "limits"),
            output_bytes=_field(data, "output_bytes", int, "limits"),
        )


@dataclass(frozen=True)
class AppVersion:
    """One published version of an app (an item of ``Client.apps()``)."""

    app: str
    version: str
    key_id: str
    module_sha256: str
    module_size: int
    http_allow: tuple[str, ...]
    limits: Limits
    published_ms: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppVersion:
        return cls(
            app=_field(data, "app", str, "app version"),
            version=_field(data, "version", str, "app version"),
            key_id=_field(data, "key_id", str, "app version"),
            module_sha256=_field(data, "module_sha256", str, "app version"),
            module_size=_field(data, "module_size", int, "app version"),
            http_allow=tuple(_field(data, "http_allow", list, "app version")),
            limits=Limits.from_json(_field(data, "limits", dict, "app version")),
            published_ms=_field(data, "published_ms", int, "app version"),
        )


@dataclass(frozen=True)
class Replication:
    """How many volunteers run each unit and when one is given up on (BOINC's settings)."""

    min_quorum: int | None = None
    """Volunteers whose outputs must agree byte for byte before one is accepted."""
    target_nresults: int | None = None
    """Replicas sent at first."""
    max_error_results: int | None = None
    """The unit fails when more replicas than this end in an error."""
    max_total_results: int | None = None
    """The unit fails when this many replicas were made without agreement."""
    delay_bound_ms: int | None = None
    """How long one volunteer has for a unit before it is given to another."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Replication:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, int]:
        return {
            name: value
            for name in self.__dataclass_fields__
            if (value := getattr(self, name)) is not None
        }


@dataclass(frozen=True)
class UnitCounts:
    """A batch's units by state."""

    queued: int
    running: int
    done: int
    failed: int
    cancelled: int

    @property
    def total(self) -> int:
        """Every unit of the batch."""
        return self.queued + self.running + self.done + self.failed + self.cancelled

    @property
    def finished(self) -> int:
        """Units that will not change any more (done, failed or cancelled)."""
        return self.done + self.failed + self.cancelled

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitCounts:
        return cls(**{name: _field(data, name, int, "counts") for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class BatchStatus:
    """A batch's state and progress (``GET /api/v1/batches/{id}``)."""

    id: int
    app: str
    version: str
    label: str | None
    state: BatchState
    created_ms: int
    first_unit: int
    counts: UnitCounts
    progress: float
    replication: Replication
    priority: int
    hosts_able: int | None
    """While units wait: how many online volunteers can take them (0: nobody can now)."""

    @property
    def is_over(self) -> bool:
        """Finished or cancelled: no unit will change any more."""
        return self.state != "running"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchStatus:
        state = _field(data, "state", str, "batch status")
        if state not in ("running", "finished", "cancelled"):
            raise UnexpectedAnswer("invalid_answer", f"unknown batch state {state!r}")
        return cls(
            id=_field(data, "id", int, "batch status"),
            app=_field(data, "app", str, "batch status"),
            version=_field(data, "version", str, "batch status"),
            label=data.get("label"),
            state=state,
            created_ms=_field(data, "created_ms", int, "batch status"),
            first_unit=_field(data, "first_unit", int, "batch status"),
            counts=UnitCounts.from_json(_field(data, "counts", dict, "batch status")),
            progress=float(_field(data, "progress", (int, float), "batch status")),
            replication=Replication.from_json(_field(data, "replication", dict, "batch status")),
            priority=_field(data, "priority", int, "batch status"),
            hosts_able=data.get("hosts_able"),
        )


@dataclass(frozen=True)
class DeletedBatch:
    """The answer to ``Batch.delete()``: the batch and its units are gone for good."""

    batch_id: int
    deleted_units: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeletedBatch:
        return cls(
            batch_id=_field(data, "batch_id", int, "delete answer"),
            deleted_units=_field(data, "deleted_units", int, "delete answer"),
        )


@dataclass(frozen=True)
class ResultRow:
    """One unit's outcome, in unit (= input) order."""

    unit_id: int
    input: JSON | bytes
    """The input as submitted: a JSON value; a raw input as ``str`` when it is UTF-8, else as
    ``bytes``."""
    state: UnitState
    output: JSON | bytes | None
    """The canonical output: decoded JSON, or the raw bytes when the task's output is not JSON;
    ``None`` while the unit has no result (see ``state`` and ``error``)."""
    error: str | None
    """Why the unit failed or was cancelled."""

    @property
    def ok(self) -> bool:
        """The unit is done and ``output`` is its result."""
        return self.state == "done"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResultRow:
        output: JSON | bytes | None = data.get("output")
        encoded = data.get("output_base64")
        if "output" not in data and isinstance(encoded, str):
            output = base64.b64decode(encoded)
        unit_input: JSON | bytes = data.get("input")
        encoded_input = data.get("input_base64")
        if isinstance(encoded_input, str):
            unit_input = base64.b64decode(encoded_input)
        return cls(
            unit_id=_field(data, "unit_id", int, "result row"),
            input=unit_input,
            state=_field(data, "state", str, "result row"),
            output=output,
            error=data.get("error"),
        )
