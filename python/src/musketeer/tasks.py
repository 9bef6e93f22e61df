"""Celery-style ergonomics: an app as a task with ``apply_async``/``delay``, ``map`` and
results with ``ready()`` and ``get()``.

>>> primes = client.task("primes")
>>> result = primes.apply_async({"from": 1, "to": 100})
>>> result.get(timeout=60)
{'count': 25, 'last': 97}
>>> primes.map([{"from": 1, "to": 10}, {"from": 11, "to": 20}])
[{'count': 4, 'last': 7}, {'count': 4, 'last': 19}]

Each ``apply_async`` submits a batch of one unit; ``map`` submits one batch for all its inputs,
which is what to use for many inputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from .errors import TaskFailed

if TYPE_CHECKING:
    from .batch import Batch
    from .client import Client
    from .models import JSON, ResultRow

__all__ = ["AsyncResult", "MapResult", "Task"]

#: Celery's names for a result's state.
CeleryState = Literal["PENDING", "STARTED", "SUCCESS", "FAILURE", "REVOKED"]


class Task:
    """An app, submitted to like a Celery task. Made by ``Client.task(app, **options)``; the
    options (``quorum``, ``version``, ``deadline``, ``priority``, ``label``, ``replication``)
    apply to every batch it submits."""

    def __init__(self, client: Client, app: str, **options: Any) -> None:
        self.client = client
        self.app = app
        self.options = options

    def __repr__(self) -> str:
        return f"Task({self.app!r})"

    def apply_async(self, value: JSON) -> AsyncResult:
        """Submits one unit with this input (any JSON value); its result, not waited for."""
        return AsyncResult(self.client.submit(self.app, [value], **self.options))

    def delay(self, value: JSON) -> AsyncResult:
        """Same as :meth:`apply_async` (Celery's shortcut)."""
        return self.apply_async(value)

    def map_async(self, inputs: Iterable[JSON]) -> MapResult:
        """Submits one batch with a unit per input; its results, not waited for."""
        return MapResult(self.client.submit(self.app, inputs, **self.options))

    def map(
        self, inputs: Iterable[JSON], *, timeout: float | None = None, progress: bool = False
    ) -> list[JSON]:
        """Runs every input and returns the outputs in input order (like ``Pool.map``).

        Raises :class:`TaskFailed` if a unit failed, :class:`TimeoutError` after ``timeout``
        seconds.
        """
        return self.map_async(inputs).get(timeout=timeout, progress=progress)


class _BatchResult:
    """What :class:`AsyncResult` and :class:`MapResult` share: a batch being computed."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    @property
    def id(self) -> int:
        """The batch id."""
        return self.batch.id

    @property
    def state(self) -> CeleryState:
        """``PENDING`` (waiting for a volunteer), ``STARTED`` (running), ``SUCCESS`` (every
        unit done), ``FAILURE`` (a unit failed) or ``REVOKED`` (cancelled)."""
        status = self.batch.status()
        if status.state == "cancelled":
            return "REVOKED"
        if status.state == "finished":
            return "FAILURE" if status.counts.failed else "SUCCESS"
        return "STARTED" if status.counts.running or status.counts.finished else "PENDING"

    def ready(self) -> bool:
        """Whether the work is over (done, failed or cancelled): ``get`` will not wait."""
        return self.batch.status().is_over

    def successful(self) -> bool:
        """Whether the work is over and every unit has a result."""
        return self.state == "SUCCESS"

    def failed(self) -> bool:
        """Whether the work is over without a result for some unit (failed or cancelled)."""
        return self.state in ("FAILURE", "REVOKED")

    def revoke(self) -> None:
        """Cancels the work (Celery's ``revoke``): unfinished units are not run."""
        self.batch.cancel()

    def forget(self) -> None:
        """Deletes the batch and its results from the server (Celery's ``forget``); only once
        the work is over."""
        self.batch.delete()

    def _rows(self, timeout: float | None, progress: bool) -> list[ResultRow]:
        self.batch.wait(timeout=timeout, progress=progress)
        rows = list(self.batch.results())
        for row in rows:
            if not row.ok:
                raise TaskFailed(row.unit_id, row.state, row.error or "no result")
        return rows


class AsyncResult(_BatchResult):
    """The result of one :meth:`Task.apply_async`."""

    def __repr__(self) -> str:
        return f"<AsyncResult batch {self.batch.id}>"

    def get(self, timeout: float | None = None, *, progress: bool = False) -> JSON:
        """Waits for the unit and returns its output (decoded JSON, or bytes if the task's
        output is not JSON).

        Raises :class:`TaskFailed` if it failed or was cancelled, :class:`TimeoutError` after
        ``timeout`` seconds (the work goes on; call ``get`` again or ``revoke``).
        """
        return self._rows(timeout, progress)[0].output


class MapResult(_BatchResult):
    """The results of one :meth:`Task.map_async`, in input order."""

    def __repr__(self) -> str:
        return f"<MapResult batch {self.batch.id}>"

    def get(self, timeout: float | None = None, *, progress: bool = False) -> list[JSON]:
        """Waits for every unit and returns the outputs in input order; :class:`TaskFailed` for
        the first unit without a result, :class:`TimeoutError` after ``timeout`` seconds."""
        return [row.output for row in self._rows(timeout, progress)]
