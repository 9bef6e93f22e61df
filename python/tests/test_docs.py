"""The Python examples of docs/researcher.md run as written against a real cluster."""

from __future__ import annotations

import re

import pytest

from cluster import REPO, Project

GUIDE = REPO / "docs" / "researcher.md"
#: The sections whose examples run here (the 2016 loop needs the TWSE feed; the demo runs it).
RUNNABLE = ["### Connect, submit, wait, collect", "### Cancel and delete", "### Celery-style"]


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
            # The guide's placeholder server and token: the environment's instead.
            code = block.replace('Client("http://project.example.org:8080", "mku_...")', "Client()")
            exec(compile(code, f"{GUIDE.name}: {section}", "exec"), namespace)
    assert namespace["status"].state == "finished"  # type: ignore[attr-defined]
    assert len(namespace["frame"]) == 2  # type: ignore[arg-type]
