"""SIGKILL durability: every acknowledged SQLite write survives, no partial write appears.

A subprocess (``tests/store/crash_writer.py``) writes with nine concurrent writers and
prints each write only after the store acknowledged it. The test kills it with SIGKILL
after a random number of acknowledgements — i.e. with commits in flight — several times
over the same file, and after every kill reopens the store and checks: every printed
write is there with its exact value and revision; every value present is whole; the
revision history has no gap and no duplicate; the CAS counter's chain is intact.
Seed: ``KSTATE_CRASH_SEED`` (printed on failure) makes a run repeatable.
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from kstate.store import open_store
from tests.store.crash_writer import COUNTER, payload

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 6
LINE_TIMEOUT = 60.0


class Lines:
    """Complete lines from a child's stdout, with a deadline (a hung child fails the test
    instead of hanging it)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buffer = b""

    def next(self) -> str | None:
        deadline = time.monotonic() + LINE_TIMEOUT
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"crash writer printed nothing for {LINE_TIMEOUT}s")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def rest(self) -> list[str]:
        """Every complete line still in the pipe (the child is dead)."""
        lines = []
        while (line := self.next()) is not None:
            lines.append(line)
        return lines


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    seed = int(os.environ.get("KSTATE_CRASH_SEED") or random.randrange(1 << 32))
    rng = random.Random(seed)
    db = tmp_path / "state.db"
    acked: dict[str, int] = {}
    counter = 0
    for round_ in range(ROUNDS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.store.crash_writer", str(db), str(round_)],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        lines = Lines(proc)
        try:
            assert lines.next() == "READY", f"seed {seed}: crash writer did not start"
            printed = [lines.next() for _ in range(rng.randint(1, 600))]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        printed += lines.rest()
        assert proc.stdout is not None
        proc.stdout.close()
        for line in printed:
            assert line is not None, f"seed {seed}: crash writer died early"
            kind, revision, what = line.split(" ", 2)
            if kind == "ACK":
                acked[what] = int(revision)
            else:
                counter = max(counter, int(what))
        asyncio.run(verify(db, acked, counter, f"seed {seed}, round {round_}"))


async def verify(db: Path, acked: dict[str, int], counter: int, where: str) -> None:
    async with open_store(f"sqlite://{db}", history=None) as store:
        for key, revision in acked.items():
            kv = await store.get(key)
            assert kv.mod_revision == revision, f"{where}: {key} moved"
            assert kv.value == payload(key), f"{where}: {key} is torn"
        chain = await store.get(COUNTER)
        assert int(chain.value) >= counter, f"{where}: acknowledged CAS lost"
        assert chain.version == int(chain.value) + 1, f"{where}: CAS chain broken"
        # Whole history: one event per revision, nothing torn, nothing missing.
        current = await store.revision()
        async with store.watch("/registry/", 2) as watch:
            events = [await anext(watch) for _ in range(current - 1)]
        assert [e.revision for e in events] == list(range(2, current + 1)), where
        for event in events:
            if event.kv.key != COUNTER:
                assert event.kv.value == payload(event.kv.key), f"{where}: torn value"
        listed = await store.list("/registry/crash/")
        assert {kv.key for kv in listed.items} >= set(acked), where
