"""`Batch.wait` outlives a server restart (the server keeps everything it acknowledged)."""

from __future__ import annotations

import threading

from musketeer import BatchStatus, Client, MusketeerError, ServerUnreachable

from cluster import Cluster, wait_for


def test_wait_keeps_waiting_while_the_server_restarts(local_cluster: Cluster) -> None:
    project = local_cluster.project("restart")
    local_cluster.publish(project, "noop", "noop")
    client = Client(project.url, project.researcher, timeout=5)
    batch = client.submit("noop", ["after the restart"])

    unreachable: list[MusketeerError] = []
    read_status = client.batch_status

    def recording_status(batch_id: int, *, wait: float | None = None) -> BatchStatus:
        try:
            return read_status(batch_id, wait=wait)
        except ServerUnreachable as error:
            unreachable.append(error)
            raise

    client.batch_status = recording_status  # type: ignore[method-assign]
    local_cluster.stop_server(project)
    outcome: list[BatchStatus | BaseException] = []

    def wait() -> None:
        try:
            outcome.append(batch.wait(progress=False, timeout=120, poll_interval=0.1))
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    wait_for("wait() to find the server gone", lambda: True if unreachable else None)

    local_cluster.start_server(project)
    local_cluster.join(project, "aramis", slots=1)
    waiter.join(timeout=120)

    assert len(outcome) == 1, "wait() did not return"
    final = outcome[0]
    assert isinstance(final, BatchStatus), final
    assert final.state == "finished" and final.counts.done == 1
    assert batch.outputs() == ["after the restart"]
    client.close()
