"""API server test plumbing: async tests, a core over the memory store, an in-process
HTTP server with tokens for every role.

``async def`` tests run in a fresh event loop each (the same hook as tests/store). A core
is started inside the test (``async with running_core() as core``) because fixtures run
outside the test's loop.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from kstate.api.server.auth import Authenticator, User
from kstate.api.server.core import ApiCore
from kstate.api.server.http import HttpApi
from kstate.clock import FakeClock
from kstate.store import Backend, open_store

START = 1_700_000_000.0

#: One bearer token per role (and one user with no role at all).
TOKENS = {
    "admin-token": User("alice", "1", ("admin",)),
    "edit-token": User("ed", "2", ("edit",)),
    "view-token": User("vera", "3", ("view",)),
    "node-token": User("system:node:n1", "4", ("system:nodes",)),
    "controller-token": User("kstate-controller", "5", ("controller",)),
    "scheduler-token": User("kstate-scheduler", "6", ("scheduler",)),
    "nobody-token": User("nobody", "7", ()),
}
ADMIN = {"Authorization": "Bearer admin-token"}


@contextlib.asynccontextmanager
async def running_core(store: Backend | None = None, clock: FakeClock | None = None,
                       **options: Any) -> AsyncIterator[ApiCore]:
    """A started core over ``store`` (default: a fresh memory store) and a FakeClock."""
    own = store is None
    store = store or open_store("memory://")
    core = ApiCore(store, clock or FakeClock(START), rng=random.Random(7), **options)
    await core.start()
    try:
        yield core
    finally:
        await core.close()
        if own:
            await store.close()


@contextlib.asynccontextmanager
async def http_client(core: ApiCore, **options: Any) -> AsyncIterator[TestClient[Any, Any]]:
    """An aiohttp test client talking to the real HTTP app over loopback."""
    api = HttpApi(core, Authenticator.from_tokens(TOKENS), **options)
    client: TestClient[Any, Any] = TestClient(TestServer(api.app()))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
