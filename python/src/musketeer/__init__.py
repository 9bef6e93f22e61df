"""Python client for a musketeer volunteer-computing server.

Submit batches of inputs to a published app, watch them, and read the results as rows or a
pandas DataFrame; or use an app like a Celery task (``apply_async``/``get``, ``map``)::

    from musketeer import Client

    client = Client("http://project.example.org:8080", "mku_...")
    batch = client.submit("stock-day", [{"stock_id": "2330", "year": 2016, "month": 5}])
    batch.wait()                      # progress bar on stderr
    frame = batch.to_dataframe()      # needs pandas

The HTTP API it speaks is described in docs/protocol.md of the musketeer repository.
"""

from .batch import Batch
from .client import Client
from .errors import MusketeerError, ServerUnreachable, TaskFailed, UnexpectedAnswer
from .models import (
    AppVersion,
    BatchStatus,
    DeletedBatch,
    Limits,
    Replication,
    ResultRow,
    UnitCounts,
)
from .tasks import AsyncResult, MapResult, Task

__all__ = [
    "AppVersion",
    "AsyncResult",
    "Batch",
    "BatchStatus",
    "Client",
    "DeletedBatch",
    "Limits",
    "MapResult",
    "MusketeerError",
    "Replication",
    "ResultRow",
    "ServerUnreachable",
    "Task",
    "TaskFailed",
    "UnexpectedAnswer",
    "UnitCounts",
]

__version__ = "0.1.0"
