"""The client's own logic, without a server: rate window, progress line, result flattening,
answer decoding and error texts."""

from __future__ import annotations

import io
import json
import pickle

import httpx
import pytest

from musketeer import (
    BatchStatus,
    Client,
    MusketeerError,
    ResultRow,
    TaskFailed,
    UnexpectedAnswer,
)
from musketeer.batch import rows_to_records
from musketeer.progress import ProgressBar, SlidingRate, progress_line


def status_json(
    done: int, total: int, *, state: str = "running", hosts_able: int | None = None
) -> dict[str, object]:
    return {
        "id": 3, "app": "stock-day", "version": "1.0.0", "label": None, "state": state,
        "created_ms": 0, "first_unit": 1, "progress": done / total, "priority": 0,
        "counts": {"queued": total - done, "running": 0, "done": done, "failed": 0,
                   "cancelled": 0},
        "replication": {"min_quorum": 1}, "hosts_able": hosts_able,
    }  # fmt: skip


def status(
    done: int, total: int, *, state: str = "running", hosts_able: int | None = None
) -> BatchStatus:
    return BatchStatus.from_json(status_json(done, total, state=state, hosts_able=hosts_able))


def test_wait_is_a_long_poll_that_ends_with_the_batch() -> None:
    asked: list[str | None] = []
    answers = [status_json(0, 1), status_json(1, 1, state="finished")]

    def serve(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("wait_ms"))
        return httpx.Response(200, json=answers[min(len(asked), len(answers)) - 1])

    client = Client("http://musketeer.test", "mku_x", transport=httpx.MockTransport(serve))
    # Each read asks the server to hold it until the batch ends, for at most poll_interval.
    final = client.batch(3).wait(progress=False, poll_interval=0.2)
    assert final.state == "finished"
    assert asked == ["200", "200"]
    # A batch over at the first answer costs one request.
    asked.clear()
    answers.pop(0)
    assert client.batch(3).wait(progress=False, poll_interval=30).state == "finished"
    assert asked == ["30000"]
    # A plain status read does not wait.
    asked.clear()
    client.batch(3).status()
    assert asked == [None]


def test_rate_counts_only_the_recent_window() -> None:
    # The case: most units were done before the watch began; the real rate is 4.5/s.
    rate = SlidingRate(window=10)
    rate.add(0.0, 880)
    assert rate.per_second() is None
    for second in range(1, 21):
        rate.add(float(second), 880 + round(4.5 * second))
    assert rate.per_second() == pytest.approx(4.5, abs=0.1)


def test_progress_line_shows_counts_rate_eta_and_a_stall() -> None:
    line = progress_line(status(12, 30), 3.0)
    assert line == "[#########---------------] 12/30 done, 0 failed, 0 running, 3.0/s, ETA 6 s"
    assert progress_line(status(0, 30), None).endswith("--/s, ETA --")
    stalled = progress_line(status(0, 2, hosts_able=0), None)
    assert stalled.endswith("no online volunteer can take the waiting units")


def test_plain_progress_prints_changes_at_most_every_two_seconds_and_the_end() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar.update(status(1, 4), 0.0)
    bar.update(status(2, 4), 1.0)  # too soon: not printed
    bar.update(status(3, 4), 2.5)
    bar.update(status(4, 4, state="finished"), 2.6)  # the end is always printed
    lines = stream.getvalue().splitlines()
    assert [line.split("] ")[1].split(" done")[0] for line in lines] == ["1/4", "3/4", "4/4"]


def test_terminal_progress_redraws_one_line_and_ends_it() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = ProgressBar(stream)
    bar.update(status(1, 2), 0.0)
    bar.update(status(1, 2), 0.1)
    bar.update(status(2, 2, state="finished"), 1.0)
    drawn = stream.getvalue()
    assert drawn.count("\r") == 3 and drawn.count("\x1b[K") == 3
    assert drawn.endswith("2/2 done, 0 failed, 0 running, 1.0/s, ETA --\x1b[K\n")


def test_rows_flatten_like_the_servers_csv() -> None:
    rows = [
        ResultRow.from_json({"unit_id": 1, "input": "a", "state": "done",
                             "output": {"close": 1.5, "state": "x"}}),
        ResultRow.from_json({"unit_id": 2, "input": "b", "state": "done",
                             "output": [{"day": 1}, {"day": 2, "close": 3}]}),
        ResultRow.from_json({"unit_id": 3, "input": "c", "state": "done", "output": 7}),
        ResultRow.from_json({"unit_id": 4, "input": "d", "state": "failed", "error": "trap"}),
    ]  # fmt: skip
    records, columns = rows_to_records(rows)
    assert columns == [
        "unit_id",
        "input",
        "state",
        "error",
        "close",
        "output.state",
        "day",
        "output",
    ]
    assert [r["unit_id"] for r in records] == [1, 2, 2, 3, 4]
    assert records[0]["output.state"] == "x" and records[0]["state"] == "done"
    assert records[2] == {"unit_id": 2, "input": "b", "state": "done", "error": None, "day": 2,
                          "close": 3}  # fmt: skip
    assert records[3]["output"] == 7
    assert records[4] == {"unit_id": 4, "input": "d", "state": "failed", "error": "trap"}


def test_a_non_json_output_comes_back_as_bytes() -> None:
    row = ResultRow.from_json(
        {"unit_id": 9, "input": None, "state": "done", "output_base64": "AP8="}
    )
    assert row.output == b"\x00\xff"


def answering(status_code: int, body: str, content_type: str = "text/html") -> Client:
    """A client whose every request gets this answer (no network)."""
    transport = httpx.MockTransport(
        lambda request: httpx.Response(status_code, text=body,
                                       headers={"content-type": content_type})
    )  # fmt: skip
    return Client("http://musketeer.test", "mku_x", transport=transport)


def test_answers_that_are_not_the_api_say_so() -> None:
    with pytest.raises(UnexpectedAnswer, match="answered 502: <html> Bad gateway </html>"):
        answering(502, "<html>\n Bad gateway </html>").apps()
    with pytest.raises(UnexpectedAnswer, match="is not JSON"):
        answering(200, "<html>welcome</html>").apps()
    with pytest.raises(UnexpectedAnswer, match="no valid 'version'"):
        answering(200, '{"versions": [{"app": "x"}]}', "application/json").apps()


def test_an_unknown_error_code_keeps_the_servers_words() -> None:
    refusal = '{"error": "brand_new", "message": "something new went wrong"}'
    with pytest.raises(MusketeerError) as refused:
        answering(418, refusal, "application/json").batches()
    assert (refused.value.code, refused.value.status) == ("brand_new", 418)
    assert str(refused.value) == "something new went wrong (418 brand_new)"


def test_inputs_that_are_not_a_list_of_json_values_are_refused_before_sending() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    client = Client("http://musketeer.test", "mku_x", transport=httpx.MockTransport(record))
    with pytest.raises(TypeError, match=r"one str, not a list of inputs: .* pass \[value\]"):
        client.submit("word-count", "one for all")
    with pytest.raises(TypeError, match="must be a JSON value.*set is not JSON serializable"):
        client.submit("noop", [{1, 2}])
    with pytest.raises(TypeError, match="must be a JSON value.*Out of range float"):
        client.submit("noop", [float("nan")])
    assert sent == []


def test_raw_inputs_travel_as_base64_without_a_json_inputs_field() -> None:
    sent: list[dict[str, object]] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(500)

    client = Client("http://musketeer.test", "mku_x", transport=httpx.MockTransport(record))
    for inputs, raw in (([b'a "b"', b"\xff"], False), (['a "b"', bytearray(b"\xff")], True)):
        with pytest.raises(MusketeerError):
            client.submit("word-count", inputs, raw=raw)
    assert [body.get("raw_inputs") for body in sent] == [["YSAiYiI=", "/w=="]] * 2
    assert all("inputs" not in body for body in sent)
    with pytest.raises(TypeError, match="mix bytes and JSON values"):
        client.submit("word-count", [b"a", "b"])
    with pytest.raises(TypeError, match=r"raw inputs are bytes or str; inputs\[1\] is dict"):
        client.submit("word-count", ["a", {"b": 1}], raw=True)
    assert len(sent) == 2


def test_a_server_without_raw_inputs_is_named_too_old() -> None:
    # What servers before raw inputs answer to a body without "inputs".
    refusal = json.dumps(
        {
            "error": "invalid_json",
            "message": "Failed to deserialize the JSON body into the target type: missing field "
            "`inputs` at line 1 column 60",
        }
    )
    with pytest.raises(MusketeerError) as refused:
        answering(400, refusal, "application/json").submit("word-count", [b"line"])
    assert refused.value.code == "server_too_old"
    assert "too old for raw (bytes) inputs" in str(refused.value)
    assert refused.value.hint is not None and "upgrade musketeer-server" in refused.value.hint
    # A JSON submit refused the same way keeps the server's words.
    with pytest.raises(MusketeerError) as json_refused:
        answering(400, refusal, "application/json").submit("word-count", ["line"])
    assert json_refused.value.code == "invalid_json"


def test_a_raw_input_that_is_not_utf8_comes_back_as_bytes() -> None:
    row = ResultRow.from_json(
        {"unit_id": 9, "input": None, "input_base64": "Y2Fm6Q==", "state": "queued"}
    )
    assert row.input == b"caf\xe9"
    text = ResultRow.from_json({"unit_id": 9, "input": "caf\u00e9", "state": "queued"})
    assert text.input == "caf\u00e9"


def test_errors_survive_pickling() -> None:
    refused = pickle.loads(pickle.dumps(MusketeerError("conflict", "still running", status=409)))
    assert (refused.code, refused.status, refused.message) == ("conflict", 409, "still running")
    failed = pickle.loads(pickle.dumps(TaskFailed(12, "failed", "trap")))
    assert (failed.unit_id, failed.state, failed.error) == (12, "failed", "trap")
    assert str(failed) == "unit 12 failed: trap"
