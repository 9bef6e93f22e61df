"""``stock-day-py``: the TWSE crawler of ``tasks/stock-day`` written in Python.

Same input, same output bytes and same error messages as the Rust task (see
``tasks/stock-day/src/lib.rs``): ``{"stock_id":"2356","year":2016,"month":5}``, optionally with
``"source"`` (base URL of a TWSE-compatible server) and ``"all_days": true``; the answer is the
month's last trading day (or every day) in the original crawler's column order.

Only the wording of malformed-input errors (wrong JSON types, unknown fields) differs: the Rust
task quotes serde's message with its line and column.
"""

from typing import Any

from musketeer_task import TaskError, WitWorld, http_get, log, progress, task_json
from request import Request
from twse import parse_answer

__all__ = ["WitWorld", "run"]

# TWSE answers the JSON report to any client; saying who we are is polite.
REQUEST_HEADERS = [
    ("Accept", "application/json"),
    ("User-Agent", "musketeer-stock-day/0.1"),
]


@task_json
def run(document: Any) -> Any:
    request = Request.from_json(document)
    url = request.url()
    log(f"GET {url}")
    try:
        response = http_get(url, REQUEST_HEADERS)
    except Exception as error:
        raise TaskError(f"fetching {url}: {error}") from None
    if response.status != 200:
        raise TaskError(f"HTTP {response.status} from {url}")
    rows = parse_answer(request.stock_id, response.body)
    progress(1.0)
    # `parse_answer` never returns an empty list.
    return rows if request.all_days else rows[-1]
