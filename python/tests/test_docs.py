"""The Python examples of docs/researcher.md run as written against a real cluster."""

from __future__ import annotations

import re

import pytest

from musketeer import Batch

from cluster import REPO, Project

GUIDE = REPO / "docs" / "researcher.md"
#: The sections whose examples run against the ``busy`` cluster, in order, in one namespace.
RUNNABLE = ["### Connect, submit, wait, collect", "### Cancel and delete", "### Celery-style"]
#: The guide's placeholder server and token; the tests use the environment's instead.
PLACEHOLDER_CLIENT = 'Client("http://project.example.org:8080", "mku_...")'


def python_blocks(section: str) -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n### ", start + len(section))
    return re.findall(r"```python\n(.*?)```", text[start : end if end != -1 else None], re.S)


def test_the_researchers_guide_python_examples_run(
    busy: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pandas")  # the examples build a DataFrame
    monkeypatch.setenv("MUSKETEER_SERVER", busy.url)
    monkeypatch.setenv("MUSKETEER_TOKEN", busy.researcher)
    namespace: dict[str, object] = {}
    for section in RUNNABLE:
        blocks = python_blocks(section)
        assert blocks, f"no python example under {section!r} in {GUIDE}"
        for block in blocks:
            code = block.replace(PLACEHOLDER_CLIENT, "Client()")
            exec(compile(code, f"{GUIDE.name}: {section}", "exec"), namespace)
    assert namespace["status"].state == "finished"  # type: ignore[attr-defined]
    assert len(namespace["frame"]) == 2  # type: ignore[arg-type]


def test_the_guides_2016_loop_crawls_the_30_stocks(
    stocks: Project, twse_feed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pandas = pytest.importorskip("pandas")
    monkeypatch.setenv("MUSKETEER_SERVER", stocks.url)
    monkeypatch.setenv("MUSKETEER_TOKEN", stocks.researcher)
    celery_loop, one_batch = python_blocks("### The 2016 loop, in Python")
    # The guide's inputs go to www.twse.com.tw; here, to the local feed.
    local = f'"month": 5, "source": {twse_feed!r}}}'
    namespace: dict[str, object] = {}
    for code in (celery_loop, one_batch):
        assert '"month": 5}' in code
        exec(compile(code.replace('"month": 5}', local), GUIDE.name, "exec"), namespace)

    stock_ids = namespace["stock_ids"]
    table = namespace["table"]
    assert isinstance(stock_ids, list) and isinstance(table, list) and len(stock_ids) == 30
    assert [row["個股代號"] for row in table] == stock_ids
    assert all(row["日期"] == "105/05/31" for row in table)  # the month's last trading day
    frame = namespace["frame"]
    assert list(frame["個股代號"]) == stock_ids  # type: ignore[index]
    closes = [None if pandas.isna(v) else v for v in frame["收盤價"]]  # type: ignore[index]
    assert closes == [row["收盤價"] for row in table]  # a day without trades: null
    batch = namespace["batch"]
    assert isinstance(batch, Batch) and batch.status().label == "May 2016"
