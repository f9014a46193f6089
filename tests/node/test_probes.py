"""Probe semantics (defaults, thresholds, initial delay, startup gating) on a fake clock,
and the real handlers (httpGet, tcpSocket over loopback; exec through the runtime)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

from kstate.api.codec import from_dict
from kstate.api.objects import Container, Pod, Probe
from kstate.clock import FakeClock
from kstate.node.probes import (
    NetworkProber,
    ProbeKind,
    ProbeManager,
    ProbeSettings,
    ProbeTarget,
    ScriptedProber,
    resolve_port,
)
from kstate.runtime.base import ContainerSpec, ContainerState, ContainerStatus, SandboxSpec
from kstate.runtime.fake import FakeRuntime

T = TypeVar("T")
T0 = 1_700_000_000.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await coro
    return asyncio.run(bounded())


def make_pod(**probes: dict[str, Any]) -> Pod:
    container: dict[str, Any] = {"name": "c0", "image": "img",
                                 "ports": [{"name": "http", "containerPort": 8080}]}
    container.update(probes)
    return from_dict(Pod, {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
                           "spec": {"containers": [container]}})


def running(cid: str = "cid-1", started: float = T0) -> dict[str, ContainerStatus]:
    return {"c0": ContainerStatus(id=cid, name="c0", sandbox_id="s", image="img",
                                  state=ContainerState.RUNNING, created_at=started,
                                  started_at=started)}


class Probed:
    """A manager over a scripted prober with its change notifications recorded."""

    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.prober = ScriptedProber()
        self.changes: list[str] = []
        self.manager = ProbeManager(self.prober, self.clock, self.changes.append)

    async def elapse(self, seconds: float) -> None:
        end = self.clock.now() + seconds
        while True:
            for _ in range(20):
                await asyncio.sleep(0)
            nxt = self.clock.next_deadline()
            if nxt is None or nxt > end:
                break
            self.clock.advance(nxt - self.clock.now())
        self.clock.advance(end - self.clock.now())
        for _ in range(20):
            await asyncio.sleep(0)

    def calls(self, kind: str) -> int:
        return sum(1 for k, _, _ in self.prober.calls if k == kind)


def test_defaults_are_kubernetes() -> None:
    assert ProbeSettings.of(Probe()) == ProbeSettings(0.0, 10.0, 1.0, 1, 3)
    assert ProbeSettings.of(Probe(period_seconds=0, failure_threshold=0)).period == 10.0


def test_named_ports_resolve_through_the_container() -> None:
    c = make_pod().spec.containers[0]
    assert resolve_port("http", c) == 8080
    assert resolve_port(9090, c) == 9090
    assert resolve_port("8081", c) == 8081
    assert resolve_port("nope", c) is None


def test_readiness_starts_not_ready_and_flips_after_the_thresholds() -> None:
    async def go() -> None:
        p = Probed()
        pod = make_pod(readinessProbe={"exec": {"command": ["x"]}, "periodSeconds": 5,
                                       "successThreshold": 2, "failureThreshold": 2,
                                       "initialDelaySeconds": 3})
        p.manager.sync_pod("u1", pod, running(), "10.0.0.2")
        assert p.manager.readiness("u1") == {"c0": False}  # unknown: not ready
        await p.elapse(2)
        assert p.calls("readiness") == 0  # initial delay
        await p.elapse(1)
        assert p.calls("readiness") == 1 and p.manager.readiness("u1") == {"c0": False}
        await p.elapse(5)
        assert p.manager.readiness("u1") == {"c0": True} and p.changes == ["u1"]
        p.prober.set("default/web", "c0", "readiness", False)
        await p.elapse(5)
        assert p.manager.readiness("u1") == {"c0": True}  # one failure is not enough
        await p.elapse(5)
        assert p.manager.readiness("u1") == {"c0": False} and p.changes == ["u1", "u1"]
        assert p.manager.liveness_failed("u1") == frozenset()
        await p.manager.close()
    run(go())


def test_liveness_failure_is_reported_and_held_until_the_container_is_replaced() -> None:
    async def go() -> None:
        p = Probed()
        pod = make_pod(livenessProbe={"tcpSocket": {"port": 8080}})
        p.prober.set("default/web", "c0", "liveness", False)
        p.manager.sync_pod("u1", pod, running("a"), "10.0.0.2")
        await p.elapse(19)
        assert p.manager.liveness_failed("u1") == frozenset()  # two failures so far
        await p.elapse(1)
        assert p.manager.liveness_failed("u1") == {"c0"}
        await p.elapse(60)
        assert p.calls("liveness") == 3  # holding: no more probes of that instance
        # The container was killed and restarted: a fresh worker, liveness passes again.
        p.prober.set("default/web", "c0", "liveness", None)
        p.manager.sync_pod("u1", pod, running("b", T0 + 80), "10.0.0.2")
        assert p.manager.liveness_failed("u1") == frozenset()
        await p.elapse(30)
        assert p.manager.liveness_failed("u1") == frozenset()
        await p.manager.close()
    run(go())


def test_startup_probe_gates_the_others_and_its_failure_kills() -> None:
    async def go() -> None:
        p = Probed()
        pod = make_pod(startupProbe={"exec": {"command": ["x"]}, "periodSeconds": 1,
                                     "failureThreshold": 5},
                       readinessProbe={"exec": {"command": ["x"]}, "periodSeconds": 1},
                       livenessProbe={"exec": {"command": ["x"]}, "periodSeconds": 1})
        p.prober.set("default/web", "c0", "startup", False)
        p.manager.sync_pod("u1", pod, running("a"), "")
        await p.elapse(3)
        assert p.calls("readiness") == 0 and p.calls("liveness") == 0
        p.prober.set("default/web", "c0", "startup", True)
        await p.elapse(2)
        assert p.calls("readiness") > 0 and p.manager.readiness("u1") == {"c0": True}
        started = p.calls("startup")
        await p.elapse(5)
        assert p.calls("startup") == started  # done once it succeeded

        q = Probed()
        q.prober.set("default/web", "c0", "startup", False)
        q.manager.sync_pod("u1", pod, running("a"), "")
        await q.elapse(5)
        assert q.manager.liveness_failed("u1") == {"c0"}  # startup failure restarts
        await p.manager.close()
        await q.manager.close()
    run(go())


def test_workers_follow_the_running_instances() -> None:
    async def go() -> None:
        p = Probed()
        pod = make_pod(readinessProbe={"exec": {"command": ["x"]}})
        p.manager.sync_pod("u1", pod, running("a"), "")
        assert p.manager.worker_count() == 1
        p.manager.sync_pod("u1", pod, {}, "")  # the container stopped
        assert p.manager.worker_count() == 0 and p.manager.readiness("u1") == {}
        p.manager.sync_pod("u1", pod, running("b"), "")
        p.manager.forget("u1")
        assert p.manager.worker_count() == 0
        await p.manager.close()
    run(go())


# ------------------------------------------------------------------------ real handlers


def _target(pod: Pod, cid: str = "", ip: str = "127.0.0.1") -> ProbeTarget:
    return ProbeTarget(pod=pod, container=pod.spec.containers[0], container_id=cid,
                       pod_ip=ip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_and_tcp_probes_over_loopback() -> None:
    async def go() -> None:
        from aiohttp import web

        async def ok(request: web.Request) -> web.Response:
            assert request.headers["X-Probe"] == "yes"
            return web.Response(text="ok")

        async def bad(request: web.Request) -> web.Response:
            return web.Response(status=500)

        async def moved(request: web.Request) -> web.Response:
            return web.Response(status=302, headers={"Location": "/elsewhere"})

        release = asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            await release.wait()
            return web.Response()

        app = web.Application()
        app.router.add_get("/ok", ok)
        app.router.add_get("/bad", bad)
        app.router.add_get("/moved", moved)
        app.router.add_get("/slow", slow)
        runner = web.AppRunner(app)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        prober = NetworkProber(FakeRuntime())
        try:
            async def http(path: str, timeout: float = 1.0) -> bool:
                probe = from_dict(Probe, {"httpGet": {
                    "path": path, "port": port,
                    "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}})
                return await prober.probe(ProbeKind.READINESS, _target(make_pod()), probe,
                                          timeout)

            assert await http("/ok") is True
            assert await http("/bad") is False
            assert await http("/moved") is True  # 3xx counts as success
            assert await http("/slow", timeout=0.2) is False
            release.set()

            def tcp(p: int) -> Probe:
                return from_dict(Probe, {"tcpSocket": {"port": p}})

            pod = make_pod()
            assert await prober.probe(ProbeKind.LIVENESS, _target(pod), tcp(port), 1) is True
            closed = _free_port()
            assert await prober.probe(ProbeKind.LIVENESS, _target(pod), tcp(closed), 1) \
                is False
            named = from_dict(Probe, {"tcpSocket": {"port": "http"}})  # -> 8080 in the pod
            no_ip = _target(pod, ip="")
            assert await prober.probe(ProbeKind.LIVENESS, no_ip, named, 1) is False
        finally:
            await prober.close()
            await runner.cleanup()
    run(go())


def test_exec_probes_run_through_the_runtime() -> None:
    async def go() -> None:
        clock = FakeClock(T0)
        rt = FakeRuntime(clock)
        sandbox = await rt.create_sandbox(SandboxSpec("u1", "default", "web", "n1"))
        cid = await rt.create_container(sandbox.id, ContainerSpec(name="c0",
                                                                  image="kstate/httpd:1"))
        await rt.start_container(cid)
        prober = NetworkProber(rt)
        pod = make_pod()

        async def exec_(*command: str) -> bool:
            probe = from_dict(Probe, {"exec": {"command": list(command)}})
            return await prober.probe(ProbeKind.LIVENESS, _target(pod, cid), probe, 1)

        assert await exec_("true") is True
        assert await exec_("false") is False
        assert await exec_("no-such-binary") is False
        slow = asyncio.ensure_future(exec_("sleep", "5"))
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(1)  # the timeout fires on the runtime's clock
        assert await slow is False
        rt.crash(cid, 1)
        assert await exec_("true") is False  # not running
        await rt.close()
    run(go())


def test_a_probe_without_handler_fails() -> None:
    async def go() -> None:
        prober = NetworkProber(FakeRuntime())
        target = _target(make_pod())
        assert await prober.probe(ProbeKind.READINESS, target, Probe(), 1) is False
    run(go())


def test_scripted_prober_can_answer_exec_through_a_fake_runtime() -> None:
    async def go() -> None:
        rt = FakeRuntime()
        sandbox = await rt.create_sandbox(SandboxSpec("u1", "default", "web", "n1"))
        cid = await rt.create_container(sandbox.id, ContainerSpec(name="c0",
                                                                  image="kstate/httpd:1"))
        await rt.start_container(cid)
        prober = ScriptedProber(default=True, runtime=rt)
        container: Container = make_pod().spec.containers[0]
        target = ProbeTarget(pod=make_pod(), container=container, container_id=cid,
                             pod_ip="")
        failing = from_dict(Probe, {"exec": {"command": ["false"]}})
        assert await prober.probe(ProbeKind.LIVENESS, target, failing, 1) is False
        http = from_dict(Probe, {"httpGet": {"port": 80}})
        assert await prober.probe(ProbeKind.LIVENESS, target, http, 1) is True
        await rt.close()
    run(go())
