#!/usr/bin/env python3
"""Cost of the userspace proxy on loopback: what a connection and a byte cost through it.

Where it sits: ``bench/proxy`` (a benchmark, not a test); results are written up in
``docs/proxy.md``. The same backend (an asyncio echo server on 127.0.0.1) is measured
directly and through a ``ServiceProxy`` ClusterIP listener, in one run, so the ratio is
the proxy's price and the machine's noise mostly cancels:

1. connect + one 64-byte request/response + close, sequentially (p50 / p99 latency);
2. the same with ``--concurrency`` clients at once (connections per second);
3. bulk transfer: ``--mib`` MiB pushed through one connection and echoed back (MiB/s);
4. endpoint-change latency: Endpoints written -> new backend set in the routing table.

    .venv/bin/python bench/proxy/bench_proxy.py --requests 2000 --mib 256
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time

from kstate.api.client import LocalClient
from kstate.api.meta import ObjectMeta
from kstate.api.objects import (
    EndpointAddress,
    EndpointPort,
    Endpoints,
    EndpointSubset,
    Service,
    ServicePort,
    ServiceSpec,
)
from kstate.api.server.core import ApiCore
from kstate.clock import RealClock
from kstate.proxy import ServiceProxy
from kstate.store import open_store

CHUNK = 256 * 1024


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def one_request(host: str, port: int) -> float:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"x" * 64)
    await reader.readexactly(64)
    writer.close()
    await writer.wait_closed()
    return time.perf_counter() - start


async def sequential(host: str, port: int, n: int) -> dict[str, float]:
    times = sorted([await one_request(host, port) for _ in range(n)])
    return {"p50_ms": times[len(times) // 2] * 1e3, "p99_ms": times[int(len(times) * 0.99)] * 1e3}


async def concurrent(host: str, port: int, n: int, width: int) -> float:
    sem = asyncio.Semaphore(width)

    async def bounded() -> None:
        async with sem:
            await one_request(host, port)

    start = time.perf_counter()
    await asyncio.gather(*(bounded() for _ in range(n)))
    return n / (time.perf_counter() - start)


async def bulk(host: str, port: int, mib: int) -> float:
    reader, writer = await asyncio.open_connection(host, port)
    block = b"\0" * CHUNK
    total = mib * 1024 * 1024

    async def send() -> None:
        for _ in range(total // CHUNK):
            writer.write(block)
            await writer.drain()
        writer.write_eof()

    start = time.perf_counter()
    sender = asyncio.create_task(send())
    got = 0
    while data := await reader.read(CHUNK):
        got += len(data)
    await sender
    elapsed = time.perf_counter() - start
    writer.close()
    assert got == total, (got, total)
    return mib / elapsed


async def main(args: argparse.Namespace) -> dict[str, object]:
    servers = [await asyncio.start_server(echo, "127.0.0.1", 0) for _ in range(3)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    store = open_store("memory://")
    core = ApiCore(store, RealClock(), rng=random.Random())
    await core.start()
    client = LocalClient(core)
    proxy = ServiceProxy(client, RealClock(), bind_address="127.0.0.1")
    await proxy.start()

    def endpoints(which: list[int]) -> Endpoints:
        return Endpoints(metadata=ObjectMeta(name="echo", namespace="default"), subsets=tuple(
            EndpointSubset(addresses=(EndpointAddress(ip="127.0.0.1"),),
                           ports=(EndpointPort(port=ports[i]),)) for i in which))

    svc = await client.create(Service(metadata=ObjectMeta(name="echo", namespace="default"),
                                      spec=ServiceSpec(ports=(ServicePort(port=9000),))))
    await client.update(endpoints([0, 1]))
    await proxy.wait_until(lambda s: s.serving("default", "echo")
                           and len(s.backends("default", "echo")) == 2)
    ip = svc.spec.cluster_ip
    out: dict[str, object] = {"python": sys.version.split()[0]}
    for name, (host, port) in {"direct": ("127.0.0.1", ports[0]), "proxy": (ip, 9000)}.items():
        out[name] = {
            "sequential": await sequential(host, port, args.requests),
            "connections_per_s": await concurrent(host, port, args.requests, args.concurrency),
            "bulk_mib_per_s": await bulk(host, port, args.mib),
        }
    changes = []
    for i in range(args.changes):
        which = [0, 2] if i % 2 == 0 else [0, 1]
        want = {ports[j] for j in which}
        start = time.perf_counter()
        await client.update(endpoints(which))
        await proxy.wait_until(lambda s, want=want: {b.port for b in s.backends(
            "default", "echo")} == want)
        changes.append(time.perf_counter() - start)
    changes.sort()
    out["endpoint_change_ms"] = {"p50": changes[len(changes) // 2] * 1e3,
                                 "max": changes[-1] * 1e3,
                                 "mean": statistics.mean(changes) * 1e3}
    await proxy.stop()
    await core.close()
    await store.close()
    for s in servers:
        s.close()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--changes", type=int, default=200)
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result, indent=2))
