"""Choosing a backend by URL: known schemes, options from the query string, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kstate.errors import UsageError
from kstate.store import open_store, register_backend
from kstate.store.memory import MemoryBackend
from kstate.store.sqlite import SqliteBackend


@pytest.mark.parametrize("url", ["mysql://x", "file:///tmp/x.db", "", "/tmp/x.db"])
def test_unknown_schemes_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError, match="memory://, sqlite://"):
        open_store(url)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///"])
def test_sqlite_url_without_a_file_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="names no file"):
        open_store(url)


async def test_query_options_reach_the_backend(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/s.db?history=none&watch_buffer=7&verify=false")
    assert isinstance(store, SqliteBackend)
    async with store:
        assert store._window is None
        assert store._hub.capacity == 7
    memory = open_store("memory://?history=5", watch_buffer=3)  # keywords win over the query
    assert isinstance(memory, MemoryBackend)
    assert (memory._window, memory._hub.capacity) == (5, 3)


def test_backends_can_be_registered() -> None:
    register_backend("scratch", lambda url, options: MemoryBackend(**options))
    assert isinstance(open_store("scratch://anything?history=3"), MemoryBackend)
