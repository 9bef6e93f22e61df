"""Batches through the Python client against a real server and real volunteers."""

from __future__ import annotations

import socket
import sys
from datetime import timedelta
from typing import Any

import pytest

from musketeer import Client, MusketeerError, Replication, ServerUnreachable

from cluster import Project
from oracle import primes

RANGES = [(1, 100), (100, 200), (1000, 1100), (7, 7), (8, 10), (99_000, 100_000)]


def primes_inputs() -> list[dict[str, int]]:
    return [{"from": low, "to": high} for low, high in RANGES]


def test_apps_lists_every_published_version(client: Client) -> None:
    versions = {(v.app, v.version): v for v in client.apps()}
    assert set(versions) == {("primes", "1.0.0"), ("word-count", "1.0.0"), ("noop", "1.0.0")}
    primes_app = versions[("primes", "1.0.0")]
    assert len(primes_app.module_sha256) == 64
    assert primes_app.module_size > 0
    assert primes_app.limits.fuel > 0 and primes_app.limits.memory_bytes > 0
    assert primes_app.http_allow == ()


def test_submit_with_quorum_then_wait_gives_every_output_in_input_order(client: Client) -> None:
    batch = client.submit("primes", primes_inputs(), quorum=2, label="python")
    assert batch.n_units == len(RANGES)
    assert batch.version == "1.0.0"

    status = batch.wait(progress=False, timeout=120)

    assert status.state == "finished"
    assert status.counts.done == len(RANGES) and status.counts.failed == 0
    assert status.replication.min_quorum == 2 and status.label == "python"
    rows = list(batch.results())
    first = batch.first_unit
    assert first is not None
    assert [row.unit_id for row in rows] == [first + i for i in range(len(RANGES))]
    assert [row.input for row in rows] == primes_inputs()
    assert [row.output for row in rows] == [primes(low, high) for low, high in RANGES]
    assert all(row.ok and row.error is None for row in rows)
    assert batch.outputs() == [row.output for row in rows]


def test_submit_options_reach_the_server(busy: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # Client() alone reads the same environment variables as the command.
    monkeypatch.setenv("MUSKETEER_SERVER", busy.url)
    monkeypatch.setenv("MUSKETEER_TOKEN", busy.researcher)
    with Client() as client:
        batch = client.submit(
            "noop", [1, 2], version="1.0.0", deadline=timedelta(seconds=90), priority=-3
        )
        status = batch.wait(progress=False, timeout=120)
    assert (status.version, status.priority) == ("1.0.0", -3)
    assert status.replication.delay_bound_ms == 90_000
    assert status.replication.min_quorum == 1

    with Client(busy.url, busy.researcher) as client:
        with pytest.raises(MusketeerError) as unknown_version:
            client.submit("noop", [1], version="9.9.9")
    assert unknown_version.value.status == 404 and "9.9.9" in unknown_version.value.message


def test_wait_draws_a_progress_bar_on_stderr(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = client.submit("primes", primes_inputs())
    batch.wait(timeout=120)
    bar = capsys.readouterr().err.strip().splitlines()[-1]
    assert bar.startswith("[" + "#" * 24 + "]"), bar
    assert f"{len(RANGES)}/{len(RANGES)} done, 0 failed, 0 running" in bar, bar


def test_results_read_into_a_dataframe_with_the_csv_columns(client: Client) -> None:
    pandas = pytest.importorskip("pandas")
    batch = client.submit("primes", primes_inputs())
    batch.wait(progress=False, timeout=120)

    frame = batch.to_dataframe()

    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == ["unit_id", "input", "state", "error", "count", "last"]
    assert list(frame["count"]) == [primes(low, high)["count"] for low, high in RANGES]
    # pandas stores the one null (no prime in 8..10) as NaN in a float column.
    last = [None if pandas.isna(value) else int(value) for value in frame["last"]]
    assert last == [primes(low, high)["last"] for low, high in RANGES]
    assert set(frame["state"]) == {"done"}


def test_dataframe_without_pandas_says_how_to_get_it(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = client.submit("noop", ["x"])
    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` sees without it
    with pytest.raises(ImportError, match=r"pip install 'musketeer\[pandas\]'"):
        batch.to_dataframe()


def test_text_and_unicode_inputs_reach_the_task_intact(client: Client) -> None:
    inputs = ["one for all, all for one", {"b": [1, 2.5, None], "a": "台積電 ✓"}]
    echoed = client.submit("noop", inputs).wait(progress=False, timeout=120)
    assert echoed.counts.done == 2
    assert client.batch(echoed.id).outputs() == inputs

    counted = client.submit("word-count", ["one for all, all for one"])
    counted.wait(progress=False, timeout=120)
    [output] = counted.outputs()
    assert output["total"] == 6 and output["unique"] == 3
    assert output["words"][0] == {"word": "all", "count": 2}


def test_raw_inputs_reach_a_text_task_without_json_escapes(client: Client) -> None:
    lines = [b"The cat", b'say "hi"\tC:\\dir', b"caf\xe9"]
    batch = client.submit("word-count", lines)
    status = batch.wait(progress=False, timeout=120)
    assert (status.counts.done, status.counts.failed) == (2, 1)
    rows = list(batch.results())
    # Shown as submitted: text as str, bytes that are not UTF-8 as bytes.
    assert [row.input for row in rows] == ["The cat", 'say "hi"\tC:\\dir', b"caf\xe9"]
    counted: list[Any] = [row.output for row in rows]
    assert counted[0]["total"] == 2
    # As JSON the task would have read the escape `\t` gluing a "t" to the "C".
    assert [entry["word"] for entry in counted[1]["words"]] == ["c", "dir", "hi", "say"]
    assert rows[2].state == "failed" and "input is not UTF-8" in (rows[2].error or "")

    # raw=True sends each str as its UTF-8 bytes, unquoted.
    quoted = client.submit("word-count", ['"quoted"'], raw=True)
    quoted.wait(progress=False, timeout=120)
    assert [row.input for row in quoted.results()] == ['"quoted"']
    assert quoted.outputs() == [
        {"total": 1, "unique": 1, "words": [{"word": "quoted", "count": 1}]}
    ]


def test_batches_lists_the_tokens_batches_newest_first(client: Client) -> None:
    first = client.submit("noop", [1])
    second = client.submit("noop", [2])
    ids = [status.id for status in client.batches()]
    assert ids.index(second.id) < ids.index(first.id)


def test_a_waiting_batch_is_cancelled_then_deleted(quiet_client: Client) -> None:
    batch = quiet_client.submit("primes", primes_inputs()[:3])
    status = batch.status()
    assert status.state == "running" and status.counts.queued == 3
    assert status.hosts_able == 0  # no volunteer on this server

    with pytest.raises(MusketeerError) as refused:
        batch.delete()
    assert (refused.value.status, refused.value.code) == (409, "conflict")

    cancelled = batch.cancel()
    assert cancelled.state == "cancelled" and cancelled.counts.cancelled == 3
    assert [row.state for row in batch.results()] == ["cancelled"] * 3
    assert batch.wait(progress=False).state == "cancelled"

    deleted = batch.delete()
    assert (deleted.batch_id, deleted.deleted_units) == (batch.id, 3)
    with pytest.raises(MusketeerError) as gone:
        batch.status()
    assert (gone.value.status, gone.value.code) == (404, "not_found")
    assert batch.id not in [status.id for status in quiet_client.batches()]


def test_wait_gives_up_after_its_timeout(quiet_client: Client) -> None:
    batch = quiet_client.submit("noop", [1])
    with pytest.raises(
        TimeoutError, match=rf"batch {batch.id} is not over after 0.3 s: .*0/1 done"
    ):
        batch.wait(progress=False, timeout=0.3, poll_interval=0.05)
    batch.cancel()


def test_a_bad_token_is_refused_with_401_and_a_hint(busy: Project) -> None:
    with Client(busy.url, "mku_not-a-real-token") as stranger:
        with pytest.raises(MusketeerError) as refused:
            stranger.apps()
    error = refused.value
    assert (error.status, error.code) == (401, "unauthorized")
    assert error.message and "check the token" in str(error)


def test_a_publisher_token_may_not_submit(busy: Project) -> None:
    with Client(busy.url, busy.publisher) as publisher:
        with pytest.raises(MusketeerError) as refused:
            publisher.submit("noop", [1])
    assert (refused.value.status, refused.value.code) == (403, "forbidden")


def test_unknown_app_and_invalid_settings_are_4xx_errors(client: Client) -> None:
    with pytest.raises(MusketeerError) as unknown:
        client.submit("no-such-app", [1])
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")
    assert "no-such-app" in unknown.value.message

    with pytest.raises(MusketeerError) as invalid:
        client.submit("noop", [1], replication=Replication(min_quorum=2, max_total_results=1))
    assert (invalid.value.status, invalid.value.code) == (400, "invalid_request")

    with pytest.raises(MusketeerError) as absent:
        client.batch(987_654).status()
    assert (absent.value.status, absent.value.code) == (404, "not_found")

    with pytest.raises(ValueError, match="1 to 1000000 inputs"):
        client.submit("noop", [])


def test_an_unreachable_server_gives_one_root_cause_and_a_hint() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now (bound, never listened, closed).
    with Client(f"http://127.0.0.1:{port}", "mku_x", timeout=5) as client:
        with pytest.raises(ServerUnreachable) as unreachable:
            client.apps()
    error = unreachable.value
    assert error.status is None and error.code == "unreachable"
    assert error.message == (
        f"cannot reach the musketeer server at http://127.0.0.1:{port}: Connection refused"
    )
    assert "musketeer-server is running" in str(error)
    assert error.__cause__ is None  # one cause, not a chain of wrappers


def test_a_url_without_scheme_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        Client("127.0.0.1:8080", "mku_x")
