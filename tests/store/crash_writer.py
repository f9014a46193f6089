"""The victim of the SIGKILL durability test: write to a SQLite store until killed.

Run as ``python -m tests.store.crash_writer DB ROUND``. Eight concurrent writers create
keys whose values can be recomputed from the key alone (so a torn value is detectable),
and one CAS chain bumps a counter. Every write is printed, flushed, *after* the store
acknowledged it: whatever this process printed must survive a SIGKILL at any moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys

from kstate.errors import Conflict, KeyExists
from kstate.store import open_store

COUNTER = "/registry/crash/counter"


def payload(key: str) -> bytes:
    """A value of 1..32 KiB that only ``key`` produces."""
    seed = hashlib.sha256(key.encode()).digest()
    size = 1024 + int.from_bytes(seed[:2], "big") % (31 * 1024)
    return (seed * (size // len(seed) + 1))[:size]


async def main(db: str, round_: int) -> None:
    async with open_store(f"sqlite://{db}", history=None) as store:

        async def creator(w: int) -> None:
            i = 0
            while True:
                key = f"/registry/crash/r{round_}/w{w}/{i}"
                kv = await store.create(key, payload(key))
                print(f"ACK {kv.mod_revision} {key}", flush=True)
                i += 1

        async def counter() -> None:
            while True:
                try:
                    kv = await store.get(COUNTER)
                    n = int(kv.value) + 1
                    kv = await store.update(COUNTER, b"%d" % n, expected_revision=kv.mod_revision)
                except Conflict:
                    continue
                print(f"CAS {kv.mod_revision} {n}", flush=True)

        with contextlib.suppress(KeyExists):  # already there from an earlier round
            await store.create(COUNTER, b"0")
        print("READY", flush=True)
        await asyncio.gather(counter(), *(creator(w) for w in range(8)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
