"""Parsing of TWSE's STOCK_DAY answer into day rows (``tasks/stock-day/src/twse.rs``).

Every cell is a string: counts carry thousands separators (``"5,614,182"``), prices two
decimals (``"1,085.00"``), the change a sign (``"+9.50"``, ``" 0.00"``) or an ``X`` prefix on
ex-rights days (``"X0.00"``), and a day without trades shows ``"--"``. A row is a dict whose
keys are the original crawler's columns in its order, as the Rust task's ``DayRow`` serializes.
"""

import json
from typing import Any

from musketeer_task import TaskError
from rust_text import debug, is_ascii_digits, trim, trim_start

# The columns after the stock id, in the order of the original crawler and of TWSE's answer.
COLUMNS = (
    "日期",
    "成交股數",
    "成交金額",
    "開盤價",
    "最高價",
    "最低價",
    "收盤價",
    "漲跌價差",
    "成交筆數",
)

U64_MAX = 2**64 - 1


class _Malformed(Exception):
    """A cell that does not parse; the caller names the column and the day."""


def parse_answer(stock_id: str, body: bytes) -> list[dict[str, Any]]:
    """Parses a STOCK_DAY answer into its rows, oldest first (never an empty list)."""
    answer = _read_answer(body)
    if answer["stat"] != "OK":
        raise TaskError(f"TWSE: {answer['stat']}")
    index = _column_index(answer.get("fields"))
    data = answer.get("data") or []
    if not data:
        raise TaskError("TWSE answer has no rows")
    return [_parse_row(stock_id, index, n, row) for n, row in enumerate(data, start=1)]


def _read_answer(body: bytes) -> dict[str, Any]:
    """The answer's ``stat``, ``fields`` and ``data``, type-checked as the Rust task's serde."""

    def malformed(reason: str) -> TaskError:
        return TaskError(f"TWSE answer is not the expected JSON: {reason}")

    try:
        answer = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise malformed(str(error)) from None
    if not isinstance(answer, dict):
        raise malformed("expected an object")
    if "stat" not in answer:
        raise malformed("missing field `stat`")
    if not isinstance(answer["stat"], str):
        raise malformed("`stat` is not a string")

    def strings(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    fields = answer.get("fields")
    if fields is not None and not strings(fields):
        raise malformed("`fields` is not a list of strings")
    data = answer.get("data")
    if data is not None and not (isinstance(data, list) and all(strings(r) for r in data)):
        raise malformed("`data` is not a list of lists of strings")
    return answer


def _column_index(fields: list[str] | None) -> list[int]:
    """Where each column sits: by name when the answer lists its fields, else by position."""
    if fields is None:
        return list(range(len(COLUMNS)))
    index = []
    for name in COLUMNS:
        found = next((n for n, f in enumerate(fields) if trim(f) == name), None)
        if found is None:
            raise TaskError(f"TWSE answer lacks the {name} column")
        index.append(found)
    return index


def _parse_row(stock_id: str, index: list[int], number: int, row: list[str]) -> dict[str, Any]:
    needed = max(index) + 1
    if len(row) < needed or len(row) > max(needed, 10):
        raise TaskError(f"TWSE answer: row {number} has {len(row)} cells")

    def cell(column: int) -> str:
        return row[index[column]]

    date = trim(cell(0))

    def parsed(column: int, parse: Any) -> Any:
        try:
            return parse(cell(column))
        except _Malformed:
            raise TaskError(
                f"TWSE answer: cannot parse {COLUMNS[column]} {debug(cell(column))} on {date}"
            ) from None

    # Keys in the Rust `DayRow`'s order; the values are checked in its field order too, so the
    # first bad cell reported is the same one.
    shares = parsed(1, _count)
    turnover = parsed(2, _count)
    open_, high, low, close = (parsed(c, _price) for c in (3, 4, 5, 6))
    change = parsed(7, _change)
    trades = parsed(8, _count)
    return {
        "個股代號": stock_id,
        "日期": date,
        "成交股數": shares,
        "成交金額": turnover,
        "開盤價": open_,
        "最高價": high,
        "最低價": low,
        "收盤價": close,
        "漲跌價差": change,
        "成交筆數": trades,
    }


def _count(cell: str) -> int | None:
    """``"5,614,182"`` -> 5614182; ``"--"`` -> None."""
    cell = trim(cell)
    if cell == "--":
        return None
    digits = cell.replace(",", "")
    if not digits or not is_ascii_digits(digits) or int(digits) > U64_MAX:
        raise _Malformed
    return int(digits)


def _price(cell: str) -> float | None:
    """``"1,085.50"`` -> 1085.5; only plain decimals (no exponent, ``inf`` or ``NaN``)."""
    cell = trim(cell)
    if cell == "--":
        return None
    return _decimal(cell)


def _change(cell: str) -> float | None:
    """``"+9.50"`` -> 9.5, ``"-2.00"`` -> -2.0, ``"X0.00"`` -> 0.0, ``"--"`` -> None."""
    cell = trim(cell)
    if cell == "--":
        return None
    # `X` marks an ex-rights / ex-dividend day; the number after it is the change.
    if cell.startswith("X"):
        cell = trim_start(cell[1:])
    if cell == "--":
        return None
    negative = cell.startswith("-")
    magnitude = cell[1:] if cell[:1] in ("+", "-") else cell
    value = _decimal(magnitude)
    # Never `-0.0`: a zero change is written ` 0.00` or `-0.00` for the same day.
    return -value if negative and value != 0.0 else value


def _decimal(text: str) -> float:
    plain = text.replace(",", "")
    whole, point, fraction = plain.partition(".")
    if (
        not whole
        or not is_ascii_digits(whole)
        or not is_ascii_digits(fraction)
        or (point and not fraction)
    ):
        raise _Malformed
    # Python's float() rounds correctly, as Rust's parse does.
    return float(plain)
