"""The engine's fault seam (``Channel`` and ``kstate.verify.faults``): each fault does
what the fuzz rules say it does, on the real components, and a run with faults is as
deterministic as one without.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from kstate.api.helpers import get_condition
from kstate.api.objects import Pod, ReplicationController, Service
from kstate.errors import Conflict, InternalError, KstateError, ServerTimeout
from kstate.verify.engine import Engine, EngineConfig, Fresh
from kstate.verify.faults import MAX_SKEW
from kstate.verify.stateful.checks import caches_match_store, endpoints_when_idle
from kstate.verify.stateful.machine import rc_manifest, service_manifest
from tests.conftest import run_together
from tests.stateful.test_engine import store_dump


async def started(**config: object) -> Engine:
    engine = Engine(EngineConfig(nodes=2, seed=3, **config))  # type: ignore[arg-type]
    await engine.start()
    return engine


def cached_pods(engine: Engine) -> set[str]:
    assert engine.manager is not None
    return set(engine.manager.pods.cache)


async def test_a_hold_keeps_the_cache_behind_until_it_ends_then_delivers_in_order() -> None:
    engine = await started()
    try:
        await engine.hold("controller-manager", "Pod", 15)
        await engine.client.create(rc_manifest("web", 2))
        await engine.drain()
        assert not cached_pods(engine)  # the manager has not seen its own creations
        assert len(await engine.objects(Pod)) == 2  # ... and, with expectations, no more
        channel = engine.channels()["controller-manager"]
        assert channel.held_kinds() == ["Pod"]
        assert await caches_match_store(engine) == []  # behind, but at its own revision
        await engine.advance(16)
        assert channel.held_kinds() == []
        assert len(cached_pods(engine)) == 2
        assert (await engine.settle()).converged
    finally:
        await engine.stop()


async def test_a_lagging_watch_delivers_every_event_late_and_in_order() -> None:
    engine = await started(delays={"controller-manager/Pod": 5})
    try:
        await engine.client.create(rc_manifest("web", 3))
        await engine.drain()
        assert not cached_pods(engine)
        await engine.advance(4.9)
        assert not cached_pods(engine)
        await engine.advance(0.2)
        assert len(cached_pods(engine)) == 3  # every creation, 5 s late
        assert (await engine.settle()).converged
        assert len(await engine.objects(Pod)) == 3  # expectations bridged the lag
        with pytest.raises(KstateError, match="delays"):
            EngineConfig(delays={"apiserver/Pod": 1})
    finally:
        await engine.stop()


async def test_a_reordered_release_delivers_the_later_kind_first() -> None:
    engine = await started()
    try:
        channel = engine.channels()["controller-manager"]
        assert engine.manager is not None
        seen: list[str] = []
        for informer in (engine.manager.services, engine.manager.leases):
            informer.add_handler(lambda kind, old, new: seen.append(type(new or old).__name__))
        channel.hold("*")
        await engine.client.create(service_manifest("web"))  # a Service event first ...
        await engine.advance(10)  # ... then the nodes' lease renewals
        assert channel.held_kinds() == ["Lease", "Service"]
        assert channel.release(reorder=True) >= 3
        await engine.drain()
        assert seen[0] == "Lease" and seen[-1] == "Service"  # the later kind came first
        assert (await engine.settle()).converged
    finally:
        await engine.stop()


async def test_a_dropped_watch_resumes_and_an_expired_one_relists() -> None:
    engine = await started()
    try:
        channel = engine.channels()["controller-manager"]
        assert channel.drop("Pod") == 1
        await engine.client.create(rc_manifest("web", 1))
        await engine.drain()
        assert not cached_pods(engine)  # waiting out its retry delay
        await engine.advance(1)
        assert len(cached_pods(engine)) == 1  # resumed from its revision: nothing lost
        assert channel.expire("Pod") == 1
        pod = (await engine.objects(Pod))[0]
        await engine.client.delete(Pod, pod.metadata.name, "default", grace_period_seconds=0)
        await engine.drain()  # relisted at once: the deletion arrives as a difference
        assert pod.metadata.name not in {k.split("/")[1] for k in cached_pods(engine)}
        assert (await engine.settle()).converged
    finally:
        await engine.stop()


@pytest.mark.parametrize(("how", "error"), [("conflict", Conflict),
                                            ("internal", InternalError),
                                            ("timeout", ServerTimeout)])
async def test_a_write_fails_at_the_chosen_point(how: str, error: type[Exception]) -> None:
    engine = await started()
    try:
        channel = engine.channels()["controller-manager"]
        channel.fail_write(1, how)  # the second write from now
        client = channel
        await client.create(service_manifest("a"))
        with pytest.raises(error):
            await client.create(service_manifest("b"))
        names = {s.metadata.name for s in await engine.objects(Service)}
        # A timeout lost the answer, not the write; a 409 or 500 wrote nothing.
        assert ("b" in names) == (how == "timeout")
        await client.create(service_manifest("c"))  # one failure, then writes go through
    finally:
        await engine.stop()


async def test_a_component_frozen_between_two_writes_is_restarted_from_the_store() -> None:
    engine = await started()
    try:
        manager = engine.manager
        engine.channels()["controller-manager"].crash_after(2)
        await engine.client.create(rc_manifest("web", 4))
        await engine.drain()
        assert engine.crashes == ["controller-manager"] and engine.manager is not manager
        assert (await engine.settle()).converged
        assert len(await engine.objects(Pod)) == 4
    finally:
        await engine.stop()


async def test_a_failing_readiness_probe_takes_the_pod_out_of_endpoints_then_back() -> None:
    engine = await started()
    try:
        await engine.client.create(rc_manifest("api", 1))  # the RC with a readiness probe
        await engine.client.create(service_manifest("api"))
        assert (await engine.settle()).converged
        pod = (await engine.objects(Pod))[0]
        engine.fail_readiness(f"default/{pod.metadata.name}", 30)
        await engine.advance(10)
        pod = await engine.client.get(Pod, pod.metadata.name, "default")
        assert get_condition(pod.status.conditions, "Ready").status == "False"  # type: ignore[union-attr]
        assert await endpoints_when_idle(engine, await Fresh.read(engine)) == []
        assert not (await engine.endpoints_mismatch())
        await engine.advance(30)
        pod = await engine.client.get(Pod, pod.metadata.name, "default")
        assert get_condition(pod.status.conditions, "Ready").status == "True"  # type: ignore[union-attr]
    finally:
        await engine.stop()


async def test_a_skewed_clock_moves_one_component_only() -> None:
    engine = await started()
    try:
        engine.skew("node node-1", MAX_SKEW)
        assert engine.clock_of("node node-1").now() == engine.clock.now() + MAX_SKEW
        assert engine.clock_of("controller-manager").now() == engine.clock.now()
        with pytest.raises(ValueError, match="at most"):
            engine.skew("scheduler", MAX_SKEW + 1)
        await engine.client.create(rc_manifest("web", 2))
        await engine.advance(120)  # leases stamped 10 s ahead: the node stays Ready
        assert (await engine.settle()).converged
    finally:
        await engine.stop()


async def with_every_fault(seed: int) -> str:
    engine = Engine(EngineConfig(nodes=3, seed=seed,
                                 delays={"controller-manager/ReplicationController": 5,
                                         "node/Pod": 2}))
    await engine.start()
    try:
        await engine.client.create(rc_manifest("web", 2))
        await engine.client.create(rc_manifest("api", 1))
        await engine.client.create(service_manifest("api"))
        await engine.hold("controller-manager", "*", 15, reorder=True)
        await engine.hold("node node-2", "Pod", 5)
        await engine.client.scale(ReplicationController, "web", 3, "default")
        await engine.drain()
        engine.channels()["scheduler"].expire("Pod")
        engine.channels()["node node-1"].drop("*")
        engine.channels()["node node-3"].fail_write(1, "timeout")
        engine.channels()["scheduler"].crash_after(1)
        engine.skew("node node-3", -MAX_SKEW)
        await engine.restart_agent("node-1")
        for pod in await engine.objects(Pod):
            engine.fail_readiness(f"default/{pod.metadata.name}", 20)
        await engine.advance(30)
        assert (await engine.settle()).converged
        return hashlib.sha256(repr((await store_dump(engine), engine.crashes)).encode()
                              ).hexdigest()
    finally:
        await engine.stop()


def test_faults_included_the_same_seed_gives_the_same_store_in_another_process() -> None:
    code = ("import asyncio; from tests.stateful.test_faults import with_every_fault; "
            "print(asyncio.run(with_every_fault(5)))")
    env = dict(os.environ, PYTHONHASHSEED="0")
    root = Path(__file__).resolve().parents[2]
    digests = [run.stdout for run in run_together([[sys.executable, "-c", code]] * 2,
                                                  env=env, cwd=root, check=True)]
    assert digests[0] == digests[1] and len(digests[0].strip()) == 64
