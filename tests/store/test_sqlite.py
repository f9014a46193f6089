"""What only the SQLite backend has: a file that outlives the process, one owner at a
time, group commit, automatic compaction, and typed errors for bad files."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kstate.errors import Compacted, StoreCorrupt, Unavailable
from kstate.store import open_store
from kstate.store.sqlite import SqliteBackend

REPO = Path(__file__).resolve().parents[2]


def url(path: Path) -> str:
    return f"sqlite://{path}"


async def test_state_survives_close_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    async with open_store(url(db)) as store:
        a = await store.create("/registry/pods/ns/a", b"a")
        b = await store.create("/registry/pods/ns/b", b"b")
        await store.update(a.key, b"a2", expected_revision=a.mod_revision)
        await store.delete(b.key)
        await store.compact(b.mod_revision)
        listed = await store.list("/registry/")
    async with open_store(url(db)) as store:
        assert await store.list("/registry/") == listed
        assert await store.revision() == listed.revision
        with pytest.raises(Compacted):
            await store.list("/registry/", revision=a.mod_revision)
        c = await store.create("/registry/pods/ns/c", b"c")
        assert c.mod_revision == listed.revision + 1


async def test_relative_sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_store("sqlite://data/state.db") as store:
        await store.create("/registry/a/b", b"x")
    assert (tmp_path / "data" / "state.db").exists()


async def test_second_opener_in_this_process_is_unavailable(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    async with open_store(url(db)):
        with pytest.raises(Unavailable, match="in use"):
            open_store(url(db))
    async with open_store(url(db)) as store:  # released on close
        assert await store.revision() == 1


async def test_second_process_is_unavailable(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    probe = (
        "import sys\n"
        "from kstate.store import open_store\n"
        "from kstate.errors import Unavailable\n"
        "try:\n"
        f"    open_store({url(db)!r})\n"
        "except Unavailable as exc:\n"
        "    print('Unavailable:', exc); sys.exit(0)\n"
        "sys.exit(3)\n"
    )
    async with open_store(url(db)):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", probe],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in use by another process" in done.stdout


def test_a_file_that_is_not_a_database_is_store_corrupt(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(os.urandom(8192))
    with pytest.raises(StoreCorrupt, match="not a database"):
        open_store(url(db))


def test_another_programs_database_is_store_corrupt(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreCorrupt, match="not a kstate store"):
        open_store(url(db))


async def test_a_damaged_store_is_store_corrupt(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    async with open_store(url(db)) as store:
        for i in range(300):
            await store.create(f"/registry/x/{i:04d}", os.urandom(512))
    data = bytearray(db.read_bytes())
    assert len(data) > 8 * 4096
    for page in range(2, len(data) // 4096):  # scribble over every page but the header
        data[page * 4096 + 8 : page * 4096 + 200] = os.urandom(192)
    db.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt):
        open_store(url(db))


def test_an_unusable_path_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(Unavailable, match="cannot open"):
        open_store(url(blocker / "state.db"))


async def test_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = open_store(url(tmp_path / "state.db"))
    await store.close()
    with pytest.raises(Unavailable, match="closed"):
        await store.get("/registry/a/b")
    with pytest.raises(Unavailable, match="closed"):
        await store.create("/registry/a/b", b"x")


async def test_concurrent_writers_share_commits(tmp_path: Path) -> None:
    store = open_store(url(tmp_path / "state.db"))
    assert isinstance(store, SqliteBackend)
    async with store:
        kvs = await asyncio.gather(*(store.create(f"/registry/k/{i}", b"x") for i in range(200)))
        assert sorted(kv.mod_revision for kv in kvs) == list(range(2, 202))
        assert store.writes == 200
        assert store.commits < 200  # group commit: many writes, fewer fsyncs


async def test_automatic_compaction_keeps_a_bounded_window(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    async with open_store(url(db), history=20) as store:
        kv = await store.create("/registry/k/a", b"0")
        for i in range(300):
            kv = await store.update(kv.key, b"%d" % i, expected_revision=kv.mod_revision)
        assert isinstance(store, SqliteBackend)
        assert store.compacted_revision() >= kv.mod_revision - 25
        with pytest.raises(Compacted):
            await store.list("/registry/", revision=kv.mod_revision - 100)
        assert (await store.list("/registry/", revision=kv.mod_revision - 15)).items
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
    assert rows <= 30  # history is bounded by the window, not by the number of writes


def test_durability_settings_are_on_the_file(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    asyncio.run(open_store(url(db)).close())
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
