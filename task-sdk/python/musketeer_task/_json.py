"""JSON in and out, written byte for byte as the Rust SDK (serde_json) writes it.

Python's ``json`` differs from serde_json in two ways that matter for byte-identical output:
the layout of floats (Python writes ``1e-07`` and ``1e-05`` where serde_json writes ``1e-7``
and ``0.00001``) and non-finite floats (serde_json writes ``null``). The digits are the same:
both write the shortest that round-trip. ``tasks/artifacts/tests/python_sdk.rs`` compares the
two on 15,000 floats. Strings escape the same characters in both (``"``, ``\\`` and
controls), so the string encoder is Python's own.
"""

import json
import math
from json.encoder import py_encode_basestring
from typing import Any


class JsonError(Exception):
    """Invalid input JSON or an output JSON cannot hold; ``str()`` is the run's error."""


def parse_json(data: bytes) -> Any:
    """Decodes the task input as JSON (error text ``invalid input JSON: ...``)."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise JsonError(f"invalid input JSON: not UTF-8 ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise JsonError(f"invalid input JSON: {error}") from None


def to_json(value: Any) -> bytes:
    """Encodes ``value`` as compact JSON, as serde_json's ``to_vec`` would.

    Dicts keep their insertion order (a Rust struct's field order); tuples and lists are arrays.
    Error text: ``cannot encode output as JSON: ...``.
    """
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("utf-8")


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, str):
        out.append(py_encode_basestring(value))
    elif isinstance(value, dict):
        out.append("{")
        for n, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise JsonError(f"cannot encode output as JSON: key {key!r} is not a string")
            if n:
                out.append(",")
            out.append(py_encode_basestring(key))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise JsonError(f"cannot encode output as JSON: {type(value).__name__} is not a JSON type")


def format_float(value: float) -> str:
    """A float as serde_json writes it: ryu's shortest digits, ``null`` when not finite."""
    if not math.isfinite(value):
        return "null"
    # repr() gives the shortest round-tripping digits, as ryu does; only the layout differs.
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0") or "0"
    # The decimal exponent of the first significant digit, then ryu's `kk` (digits before the
    # point when written without an exponent).
    lead = len(whole) if whole != "0" else -(len(fraction) - len(fraction.lstrip("0")))
    point = lead + int(exponent or 0)
    digits = digits.rstrip("0") or "0"
    if digits == "0":
        return sign + "0.0"
    length = len(digits)
    if length <= point <= 16:
        return f"{sign}{digits}{'0' * (point - length)}.0"
    if 0 < point <= 16:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    # serde_json signs a positive exponent (`1e+16`) but not a zero-padded one (`1e-7`).
    exp = point - 1
    exponent_text = f"e+{exp}" if exp >= 0 else f"e{exp}"
    if length == 1:
        return f"{sign}{digits}{exponent_text}"
    return f"{sign}{digits[0]}.{digits[1:]}{exponent_text}"
