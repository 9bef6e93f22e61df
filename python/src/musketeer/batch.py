"""A submitted batch: watch it, read its results, cancel or delete it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import MusketeerError, ServerUnreachable, TaskFailed, UnexpectedAnswer
from .models import BatchStatus, DeletedBatch, ResultRow
from .progress import ProgressBar, progress_line

if TYPE_CHECKING:
    import pandas

    from .client import Client

__all__ = ["Batch", "rows_to_records"]

#: How long ``wait`` keeps trying while the server does not answer (e.g. it restarts).
UNREACHABLE_GRACE_SECONDS = 60.0
#: The fixed columns of :meth:`Batch.to_dataframe`, as in the server's CSV results.
FIXED_COLUMNS = ("unit_id", "input", "state", "error")


class Batch:
    """A batch of work units on the server. Returned by ``Client.submit`` and ``Client.batch``.

    Attributes:
        id: the batch id (what ``musketeer batch status ID`` takes).
        n_units: how many units it has (None for a batch looked up by id).
        first_unit: its first unit id; the others follow in input order (None if not known).
        version: the app version it runs (None if not known).
    """

    def __init__(
        self,
        client: Client,
        batch_id: int,
        *,
        n_units: int | None = None,
        first_unit: int | None = None,
        version: str | None = None,
    ) -> None:
        self.client = client
        self.id = int(batch_id)
        self.n_units = n_units
        self.first_unit = first_unit
        self.version = version

    @classmethod
    def from_submit_answer(cls, client: Client, answer: Any) -> Batch:
        if not isinstance(answer, Mapping) or not all(
            isinstance(answer.get(key), want)
            for key, want in (("batch_id", int), ("n_units", int), ("first_unit", int))
        ):
            raise UnexpectedAnswer("invalid_answer", f"unexpected submit answer: {answer!r:.200}")
        return cls(
            client,
            answer["batch_id"],
            n_units=answer["n_units"],
            first_unit=answer["first_unit"],
            version=answer.get("version"),
        )

    def __repr__(self) -> str:
        units = f", n_units={self.n_units}" if self.n_units is not None else ""
        return f"Batch(id={self.id}{units})"

    def status(self, *, wait: float | None = None) -> BatchStatus:
        """The batch's state and unit counts now; with ``wait`` (seconds), as soon as the batch
        ends or when ``wait`` has passed (a long poll on the server, at most 30 s)."""
        return self.client.batch_status(self.id, wait=wait)

    def wait(
        self,
        *,
        progress: bool = True,
        timeout: float | None = None,
        poll_interval: float = 1.0,
    ) -> BatchStatus:
        """Waits until every unit is done or failed, or the batch is cancelled.

        Args:
            progress: draw a progress bar (done/total, failed, running, rate and ETA over the
                last 30 s) on stderr.
            timeout: give up after this many seconds with :class:`TimeoutError` (default: wait
                as long as it takes).
            poll_interval: the longest one status read waits on the server (seconds). The
                server answers the moment the batch ends, so this is only how often the
                progress bar refreshes, not how late the wait ends.

        A server that stops answering for a while (a restart) is waited for up to a minute.
        """
        bar = ProgressBar() if progress else None
        started = time.monotonic()
        unreachable_since: float | None = None
        while True:
            now = time.monotonic()
            wait = poll_interval
            if timeout is not None:
                wait = max(0.0, min(wait, started + timeout - now))
            try:
                status = self.status(wait=wait)
                unreachable_since = None
            except MusketeerError as error:
                if not _retryable(error):
                    raise
                unreachable_since = unreachable_since if unreachable_since is not None else now
                if now - unreachable_since > UNREACHABLE_GRACE_SECONDS:
                    raise
                status = None
            answered = time.monotonic()
            if status is not None:
                if bar is not None:
                    bar.update(status, answered)
                if status.is_over:
                    return status
            if timeout is not None and answered - started >= timeout:
                shown = progress_line(status, None) if status is not None else "no answer"
                raise TimeoutError(f"batch {self.id} is not over after {timeout:g} s: {shown}")
            # An answer well before the wait with the batch still running: no long poll (a
            # server that was unreachable, or one older than long polls). Pause for the rest.
            early = wait - (answered - now)
            if early > 0.05:
                time.sleep(early)

    def results(self) -> Iterator[ResultRow]:
        """The units' outcomes in input order, streamed from the server.

        A running batch gives its unfinished units too (state ``queued`` or ``running``,
        ``output`` None); call :meth:`wait` first for the final results.
        """
        return self.client.batch_results(self.id)

    def outputs(self) -> list[Any]:
        """Every unit's output in input order; :class:`TaskFailed` for the first unit that
        has none (failed, cancelled or not finished)."""
        outputs = []
        for row in self.results():
            if not row.ok:
                raise TaskFailed(row.unit_id, row.state, row.error or "no result yet")
            outputs.append(row.output)
        return outputs

    def to_dataframe(self) -> pandas.DataFrame:
        """The results as a pandas DataFrame, with the columns of the server's CSV results:
        ``unit_id``, ``input``, ``state``, ``error``, then one column per key of JSON-object
        outputs in first-seen order (an array of objects gives one row per element; any other
        output goes to an ``output`` column). Values keep their JSON types. An output key
        equal to a fixed column's name becomes ``output.KEY``.

        Needs pandas (``pip install 'musketeer[pandas]'``).
        """
        try:
            import pandas
        except ImportError as error:
            raise ImportError(
                "Batch.to_dataframe() needs pandas, which is not installed: "
                "pip install 'musketeer[pandas]' (or pip install pandas); "
                "Batch.results() gives the same rows without it"
            ) from error
        records, columns = rows_to_records(self.results())
        return pandas.DataFrame.from_records(records, columns=columns)

    def cancel(self) -> BatchStatus:
        """Stops handing out the batch's unfinished units; volunteers abort running ones."""
        return self.client.cancel_batch(self.id)

    def delete(self) -> DeletedBatch:
        """Removes the batch with its inputs and results from the server for good.

        Only for a batch that is over: a running one is refused with a ``conflict``
        :class:`MusketeerError` (cancel it first, or wait for it).
        """
        return self.client.delete_batch(self.id)


def _retryable(error: MusketeerError) -> bool:
    """No answer, or a server that says it cannot serve now: worth another try."""
    return isinstance(error, ServerUnreachable) or error.code in ("unavailable", "rate_limited")


def rows_to_records(rows: Iterable[ResultRow]) -> tuple[list[dict[str, Any]], list[str]]:
    """Flattens result rows as the server's CSV does; the records and the column names."""
    records: list[dict[str, Any]] = []
    columns: dict[str, None] = dict.fromkeys(FIXED_COLUMNS)
    for row in rows:
        fixed = {"unit_id": row.unit_id, "input": row.input, "state": row.state, "error": row.error}
        output = row.output
        if isinstance(output, dict):
            parts: list[dict[str, Any]] = [output]
        elif isinstance(output, list) and output and all(isinstance(i, dict) for i in output):
            parts = output
        elif row.output is None and not row.ok:
            parts = [{}]
        else:
            parts = [{"output": output}]
        for part in parts:
            record = dict(fixed)
            for key, value in part.items():
                name = f"output.{key}" if key in FIXED_COLUMNS else key
                columns.setdefault(name, None)
                record[name] = value
            records.append(record)
    return records, list(columns)
