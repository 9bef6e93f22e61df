"""Celery-style use (`apply_async`, `get`, `map`) against a real server and real volunteers."""

from __future__ import annotations

import pytest

from musketeer import Client, MusketeerError, Replication, TaskFailed

from oracle import primes


def test_apply_async_then_get_returns_the_output(client: Client) -> None:
    result = client.task("primes").apply_async({"from": 1, "to": 1000})
    assert result.get(timeout=120) == primes(1, 1000)
    assert result.ready() and result.successful() and not result.failed()
    assert result.state == "SUCCESS"
    assert client.task("primes", quorum=2).delay({"from": 5, "to": 5}).get(timeout=120) == {
        "count": 1,
        "last": 5,
    }


def test_map_returns_outputs_in_input_order(client: Client) -> None:
    ranges = [(n * 500, n * 500 + 499) for n in range(8)]
    task = client.task("primes")
    outputs = task.map([{"from": low, "to": high} for low, high in ranges], timeout=120)
    assert outputs == [primes(low, high) for low, high in ranges]

    pending = task.map_async([{"from": 2, "to": 3}, {"from": 4, "to": 4}])
    assert pending.get(timeout=120) == [{"count": 2, "last": 3}, {"count": 0, "last": None}]
    assert pending.state == "SUCCESS"


def test_a_failing_unit_raises_task_failed_with_the_tasks_reason(client: Client) -> None:
    # No error is retried, so the first one fails the unit.
    task = client.task("primes", replication=Replication(max_error_results=0))
    result = task.apply_async({"from": 5, "to": 1})
    with pytest.raises(TaskFailed) as failed:
        result.get(timeout=120)
    error = failed.value
    assert error.state == "failed" and error.unit_id == result.batch.first_unit
    assert "from = 5 is greater than to = 1" in error.error
    assert isinstance(error, MusketeerError)
    assert result.state == "FAILURE" and result.failed() and not result.successful()
    result.forget()
    with pytest.raises(MusketeerError, match="not_found"):
        result.batch.status()


def test_a_waiting_result_times_out_then_is_revoked_and_forgotten(quiet_client: Client) -> None:
    result = quiet_client.task("noop").apply_async("never run")
    assert result.state == "PENDING" and not result.ready()
    with pytest.raises(TimeoutError):
        result.get(timeout=0.2)

    result.revoke()

    after_revoke: str = result.state  # a fresh read (mypy would keep the narrowed PENDING)
    assert result.ready() and after_revoke == "REVOKED" and result.failed()
    with pytest.raises(TaskFailed) as cancelled:
        result.get(timeout=5)
    assert cancelled.value.state == "cancelled"
    result.forget()
    assert result.batch.id not in [status.id for status in quiet_client.batches()]
