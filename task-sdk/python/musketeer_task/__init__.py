"""Guest-side API for musketeer task modules written in Python.

A musketeer task is a WebAssembly component exporting ``run(input) -> result<output, error>``
(the WIT world in ``task-sdk/wit/task.wit``). componentize-py builds such a component from a
Python module; this package hides its bindings, so a task is a plain function::

    from musketeer_task import WitWorld, TaskError, log, task_json

    @task_json
    def run(request):
        if "n" not in request:
            raise TaskError("invalid input: n is missing")
        log(f"n = {request['n']}")
        return {"double": 2 * request["n"]}

The module must make ``WitWorld`` one of its names (the import above does): componentize-py
looks the export up there. Build it with::

    componentize-py -d task-sdk/wit -w task componentize \
        -p task-sdk/python -p <dir> <module> -o task.wasm

``task`` takes ``bytes`` and returns ``bytes``; ``task_json`` parses the input as JSON and writes
the output exactly as the Rust SDK's ``to_json`` (serde_json) does, so a Python port of a Rust
task can give byte-identical output. Raising ``TaskError(message)`` ends the run with that
task-level error; any other exception ends it with ``<ExceptionType>: <message>``.
"""

from collections.abc import Callable
from typing import Any

from musketeer_task._host import (
    HttpError,
    HttpResponse,
    http_get,
    log,
    progress,
)
from musketeer_task._json import JsonError, parse_json, to_json

__all__ = [
    "HttpError",
    "HttpResponse",
    "JsonError",
    "TaskError",
    "WitWorld",
    "http_get",
    "log",
    "parse_json",
    "progress",
    "task",
    "task_json",
    "to_json",
]


class TaskError(Exception):
    """A task-level error: the run ends with ``str(error)`` as its error message."""


_entry: Callable[[bytes], bytes] | None = None


def _register(entry: Callable[[bytes], bytes]) -> None:
    global _entry
    if _entry is not None:
        raise RuntimeError("a module may declare only one @task or @task_json function")
    _entry = entry


def task(function: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Makes ``function(input: bytes) -> bytes`` the module's ``run`` export."""
    _register(function)
    return function


def task_json(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Makes ``function(request) -> result`` the ``run`` export, with JSON input and output.

    A malformed input ends the run with ``invalid input JSON: ...``; a result JSON cannot hold
    ends it with ``cannot encode output as JSON: ...`` (the Rust SDK's messages).
    """

    def entry(data: bytes) -> bytes:
        request = parse_json(data)
        return to_json(function(request))

    _register(entry)
    return function


def _call(data: bytes) -> bytes:
    """Runs the registered task; every failure becomes an error message string."""
    if _entry is None:
        raise TaskError("the task module declares no @task or @task_json function")
    output = _entry(data)
    if not isinstance(output, (bytes, bytearray)):
        raise TaskError(f"a @task function must return bytes, not {type(output).__name__}")
    return bytes(output)


def _error_message(error: Exception) -> str:
    if isinstance(error, (TaskError, JsonError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


# The bindings exist only inside componentize-py's build; outside it (native unit tests of a
# task's plain functions) the package still imports, without the export.
try:
    import wit_world
    from componentize_py_types import Err
except ImportError:  # pragma: no cover - depends on where the module runs
    WitWorld: Any = None
else:

    class WitWorld(wit_world.WitWorld):  # type: ignore[no-redef]
        """The ``run`` export componentize-py looks up in the task's module."""

        def run(self, input: bytes) -> bytes:
            try:
                return _call(input)
            except Exception as error:  # every failure is the run's error, never a trap
                raise Err(_error_message(error)) from None
