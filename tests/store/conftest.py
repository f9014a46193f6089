"""Store test plumbing: async tests, the backends to run the contract against, and etcd.

``async def`` tests run in a fresh event loop each (no plugin needed). The ``store_url``
fixture yields one URL per backend; etcd comes from ``KSTATE_TEST_ETCD`` (host:port, as
``./dev test`` starts it) or, when unset, from a private etcd spawned once per session on
free loopback ports. Every test gets its own key namespace (``ns``), so tests sharing one
etcd never see each other's keys.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require, require_binary

BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("etcd", marks=pytest.mark.etcd),
]


def require_etcd_client() -> None:
    require(importlib.util.find_spec("aetcd") is not None, "Python package 'aetcd' (extra: etcd)")


@pytest.fixture(scope="session")
def etcd_url() -> Iterator[str]:
    """``etcd://...`` of the etcd the contract suite runs against."""
    require_etcd_client()
    external = os.environ.get("KSTATE_TEST_ETCD")
    if external:
        yield f"etcd://{external}"
        return
    require_binary("etcd")
    from kstate.store.etcdproc import EtcdCluster

    with EtcdCluster(size=1) as cluster:
        yield cluster.url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("etcd_url"))


@pytest.fixture
def ns() -> str:
    """A key prefix of this test's own: ``/registry/t<random>/``."""
    return f"/registry/t{uuid.uuid4().hex[:10]}/"
