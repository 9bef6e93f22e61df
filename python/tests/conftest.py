"""Fixtures: one real cluster per test session (see cluster.py).

- ``busy``: a server with two volunteers (two slots each), so batches run, with quorum 2 too.
- ``quiet``: a server with no volunteer, so units stay queued for as long as a test needs.
- ``stocks``: the 2016 setup, ``stock-day`` allowed to reach only the local TWSE-format feed
  (``MUSKETEER_TWSE_FEED``, started by ``cargo xtask python``) and four volunteer slots.

The first two have ``primes``, ``word-count`` and ``noop`` published, signed by the cluster's key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from musketeer import Client

from cluster import Cluster, Project, cluster

APPS = {"primes": "primes", "word-count": "word_count", "noop": "noop"}


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


def _project_with_apps(local_cluster: Cluster, name: str) -> Project:
    project = local_cluster.project(name)
    for app, task in APPS.items():
        local_cluster.publish(project, task, app)
    return project


@pytest.fixture(scope="session")
def busy(local_cluster: Cluster) -> Project:
    project = _project_with_apps(local_cluster, "busy")
    for name in ("athos", "porthos"):
        local_cluster.join(project, name, slots=2)
    return project


@pytest.fixture(scope="session")
def quiet(local_cluster: Cluster) -> Project:
    return _project_with_apps(local_cluster, "quiet")


@pytest.fixture(scope="session")
def twse_feed() -> str:
    """The local TWSE-format feed's base URL (the Rust `musketeer-twse-feed` crate serves it)."""
    feed = os.environ.get("MUSKETEER_TWSE_FEED")
    if not feed:
        pytest.skip("needs the local TWSE-format feed: run `cargo xtask python`, which starts it")
    return feed


@pytest.fixture(scope="session")
def stocks(local_cluster: Cluster, twse_feed: str) -> Project:
    project = local_cluster.project("stocks")
    local_cluster.publish(project, "stock_day", "stock-day", allow_http=[twse_feed + "/"])
    for name in ("musketeer-1", "musketeer-2"):
        local_cluster.join(project, name, slots=2)
    return project


@pytest.fixture
def client(busy: Project) -> Iterator[Client]:
    with Client(busy.url, busy.researcher) as researcher:
        yield researcher


@pytest.fixture
def quiet_client(quiet: Project) -> Iterator[Client]:
    with Client(quiet.url, quiet.researcher) as researcher:
        yield researcher
