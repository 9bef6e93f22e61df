"""The task input and the TWSE URL it maps to (``tasks/stock-day/src/request.rs``)."""

from dataclasses import dataclass
from typing import Any

from musketeer_task import TaskError
from rust_text import RUST_WHITESPACE, debug

# Where the report is fetched from when the input names no `source`.
DEFAULT_SOURCE = "https://www.twse.com.tw"

FIELDS = ("stock_id", "year", "month", "source", "all_days")


def _invalid_json(message: str) -> TaskError:
    return TaskError(f"invalid input JSON: {message}")


def _integer(document: dict[str, Any], name: str, maximum: int, rust_type: str) -> int:
    value = document[name]
    # JSON `true` is a Python int; the Rust task takes only numbers.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid_json(f"invalid type: {_describe(value)}, expected {rust_type}")
    if not 0 <= value <= maximum:
        raise _invalid_json(f"invalid value: integer `{value}`, expected {rust_type}")
    return value


def _describe(value: Any) -> str:
    """serde's ``Unexpected`` wording for a JSON value of the wrong type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {debug(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


@dataclass(frozen=True)
class Request:
    """``{"stock_id":"2356","year":2016,"month":5}`` plus optional ``source`` and ``all_days``."""

    stock_id: str
    year: int
    month: int
    source: str | None = None
    all_days: bool = False

    @staticmethod
    def from_json(document: Any) -> "Request":
        """Reads the input document as the Rust task's serde ``Request``, then validates it."""
        if not isinstance(document, dict):
            raise _invalid_json(f"invalid type: {_describe(document)}, expected struct Request")
        for name in document:
            if name not in FIELDS:
                expected = ", ".join(f"`{f}`" for f in FIELDS)
                raise _invalid_json(f"unknown field `{name}`, expected one of {expected}")
        for name in FIELDS[:3]:
            if name not in document:
                raise _invalid_json(f"missing field `{name}`")
        stock_id = document["stock_id"]
        if not isinstance(stock_id, str):
            raise _invalid_json(f"invalid type: {_describe(stock_id)}, expected a string")
        source = document.get("source")
        if source is not None and not isinstance(source, str):
            raise _invalid_json(f"invalid type: {_describe(source)}, expected a string")
        all_days = document.get("all_days", False)
        if not isinstance(all_days, bool):
            raise _invalid_json(f"invalid type: {_describe(all_days)}, expected a boolean")
        request = Request(
            stock_id=stock_id,
            year=_integer(document, "year", 0xFFFF, "u16"),
            month=_integer(document, "month", 0xFF, "u8"),
            source=source,
            all_days=all_days,
        )
        request.validate()
        return request

    def validate(self) -> None:
        """Checks the fields that end up in the URL, so no input can change its shape."""
        stock_id = self.stock_id
        if (
            not stock_id
            or len(stock_id.encode("utf-8")) > 12
            or not all(c.isascii() and c.isalnum() for c in stock_id)
        ):
            raise TaskError(
                f"invalid input: stock_id {debug(stock_id)} must be 1 to 12 ASCII letters or digits"
            )
        if not 1000 <= self.year <= 9999:
            raise TaskError(f"invalid input: year {self.year} must have four digits")
        if not 1 <= self.month <= 12:
            raise TaskError(f"invalid input: month {self.month} must be 1 to 12")
        if self.source is not None:
            source = self.source
            rest = None
            for scheme in ("https://", "http://"):
                if source.startswith(scheme):
                    rest = source[len(scheme) :]
                    break
            if not rest or "?" in rest or "#" in rest or any(c in RUST_WHITESPACE for c in rest):
                raise TaskError(
                    f"invalid input: source {debug(source)} must be an http(s) base URL "
                    "without query or fragment"
                )

    def url(self) -> str:
        """The STOCK_DAY report URL for this stock and month."""
        source = (self.source if self.source is not None else DEFAULT_SOURCE).rstrip("/")
        return (
            f"{source}/rwd/zh/afterTrading/STOCK_DAY?date={self.year:04}{self.month:02}01"
            f"&stockNo={self.stock_id}&response=json"
        )
