"""``ServiceProxy``: the kube-proxy of kstate — userspace TCP listeners that forward
connections for Services to their ready pods.

Where it sits: the last hop of the runtime path::

    Services + Endpoints -> informers -> sync() -> compute_plan()  (routing.py, pure)
      -> asyncio listeners: ClusterIP:port, <bind>:nodePort, <gateway>:<pod port>
      -> per connection: pick() a backend (round-robin / ClientIP affinity),
         retry another on refusal or timeout -> relay bytes both ways -> pod

Why it is built this way: all decisions (which sockets, which backends, which backend
next) are the pure functions of ``routing.py`` and ``podports.py``; this module only
owns sockets, tasks and the one write the proxy makes (the pod-port annotation). It is
level-triggered like the controllers: informer events only mark the proxy dirty, and
``sync`` recomputes the whole plan from the caches and reconciles the sockets to it.

Behaviour worth knowing:

* Endpoint changes swap the routing table in place: listeners and established
  connections are untouched. Connections to an endpoint that left are *left to finish*
  (kube-proxy does the same: conntrack keeps existing flows); the pod's own graceful
  shutdown ends them. New connections only go to current ready endpoints.
* A Service with no ready endpoint keeps its listeners; each connection is reset at once
  (kube-proxy REJECTs) — clients fail fast instead of reaching a pod shutting down.
* A listener that cannot bind (address in use, address not on this host, privileged
  port) is logged once as an error and retried every ``retry_interval`` seconds; other
  listeners are unaffected. Deleted Services' listeners close on the next sync (the
  Service machine's ``released`` step, which the API server records on deletion).
* UDP / SCTP ports are not proxied (a warning names the port).

Embedding (the all-in-one daemon)::

    gateway = (await runtime.network_info()).gateway
    proxy = ServiceProxy(client, RealClock(), bind_address="0.0.0.0",
                         pod_facing_address=gateway)
    await proxy.start()                      # informers synced, listeners opened
    await proxy.wait_listening("default", "web")
    ...
    await proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import attrs

from kstate.api.client import ApiClient
from kstate.api.frozen import FrozenDict
from kstate.api.objects import Endpoints, Service
from kstate.clock import Clock, RealClock
from kstate.control.informer import Informer
from kstate.control.podports import (
    DEFAULT_POD_PORT_RANGE,
    POD_PORTS_ANNOTATION,
    assign_pod_ports,
    format_pod_ports,
    pod_port_refs,
    read_pod_ports,
)
from kstate.errors import Conflict, KstateError, NotFound
from kstate.proxy.routing import (
    WILDCARD,
    Backend,
    Balancer,
    Listener,
    Plan,
    PortRef,
    Route,
    compute_plan,
    pick,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K", Service, Endpoints)

#: kube-proxy's (userspace mode) dial timeouts: one attempt per entry, each on another
#: endpoint, so a dead pod costs a client at most a quarter of a second when others live.
DEFAULT_CONNECT_TIMEOUTS = (0.25, 0.5, 1.0, 2.0)
_CHUNK = 64 * 1024

Key = tuple[str, int]
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@attrs.frozen
class ProxyStatus:
    """A snapshot of what the proxy is doing (for tests, ``kstate`` status output and
    readiness checks)."""

    desired: frozenset[Listener]
    listening: frozenset[Listener]
    failed: FrozenDict[Listener, str]
    routes: FrozenDict[PortRef, Route]

    def listeners_of(self, namespace: str, name: str) -> frozenset[Listener]:
        """The bound listeners of one Service."""
        return frozenset(lst for lst in self.listening
                         if (lst.service.namespace, lst.service.name) == (namespace, name))

    def serving(self, namespace: str, name: str) -> bool:
        """Every listener the Service should have is bound (and it has at least one)."""
        wanted = {lst for lst in self.desired
                  if (lst.service.namespace, lst.service.name) == (namespace, name)}
        return bool(wanted) and wanted <= self.listening

    def backends(self, namespace: str, name: str, port: str = "") -> tuple[Backend, ...]:
        route = self.routes.get(PortRef(namespace, name, port))
        return route.backends if route else ()


class ServiceProxy:
    """Listens for every Service and forwards each connection to a ready pod.

    ``bind_address`` is where NodePorts listen (Kubernetes: every address, ``0.0.0.0``);
    ``pod_facing_address`` is the pod network's gateway (``runtime.network_info().gateway``)
    where containers reach Services on their pod ports, or ``None`` for no pod access.
    ``assign_pod_ports`` (default: on when there is a pod-facing address) makes this proxy
    record pod ports on Services (``podports.py``); several proxies may do it at once.
    """

    def __init__(
        self,
        client: ApiClient,
        clock: Clock | None = None,
        *,
        bind_address: str = WILDCARD,
        pod_facing_address: str | None = None,
        pod_port_range: tuple[int, int] = DEFAULT_POD_PORT_RANGE,
        assign_pod_ports: bool | None = None,
        connect_timeouts: Sequence[float] = DEFAULT_CONNECT_TIMEOUTS,
        retry_interval: float = 5.0,
    ) -> None:
        if not connect_timeouts:
            raise ValueError("connect_timeouts needs at least one attempt")
        self.client = client
        self.clock: Clock = clock or RealClock()
        self.bind_address = bind_address
        self.pod_facing_address = pod_facing_address or None
        self.pod_port_range = pod_port_range
        self.assigns_pod_ports = (self.pod_facing_address is not None
                                  if assign_pod_ports is None else assign_pod_ports)
        self.connect_timeouts = tuple(connect_timeouts)
        self.retry_interval = retry_interval
        self._dirty = asyncio.Event()
        self._services: Informer[Service] = self._informer(Service)
        self._endpoints: Informer[Endpoints] = self._informer(Endpoints)
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._plan = Plan()
        self._targets: dict[Key, PortRef] = {}
        self._servers: dict[Key, asyncio.Server] = {}
        self._failed: dict[Key, str] = {}
        self._balancers: dict[PortRef, Balancer] = {}
        self._connections: set[asyncio.Task[Any]] = set()
        self._warned: set[str] = set()
        self._retry = False
        # Pod-port bookkeeping: the last allocation seen or written per Service uid (so a
        # PUT that drops the annotation gets the same ports back) and the write in flight
        # per uid as (resourceVersion written against, value) so it is not repeated.
        self._remembered: dict[str, dict[int, int]] = {}
        self._written: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------ lifecycle

    def _informer(self, kind: type[K]) -> Informer[K]:
        informer = Informer(self.client, kind, clock=self.clock)
        # Level-triggered: an event only says "look again"; sync() reads the caches.
        informer.add_handler(lambda *_: self._dirty.set())
        return informer

    async def start(self) -> None:
        """List and watch Services and Endpoints, open the listeners they call for, and
        keep them current until :meth:`stop` (after which ``start`` may be called again)."""
        if self._tasks:
            raise RuntimeError("ServiceProxy already started")
        # Fresh caches: a restarted proxy rebuilds everything from the API server.
        self._services, self._endpoints = self._informer(Service), self._informer(Endpoints)
        for informer in (self._services, self._endpoints):
            self._tasks.append(asyncio.create_task(
                informer.run(), name=f"proxy-informer-{informer.kind.__name__}"))
        synced: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(
            self._services.synced(), self._endpoints.synced()))
        try:
            # An informer that dies before its first list would otherwise hang start().
            waiting: set[asyncio.Future[Any]] = {synced, *self._tasks}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if synced not in done:
                next(iter(done)).result()  # raises the informer's error
                raise RuntimeError("proxy informer stopped before its first list")
            await self._sync_guarded()
        except BaseException:
            synced.cancel()
            await self.stop()  # a failed or cancelled start leaves nothing running
            raise
        self._tasks.append(asyncio.create_task(self._loop(), name="proxy-sync"))

    async def stop(self) -> None:
        """Close every listener and connection and stop watching."""
        for informer in (self._services, self._endpoints):
            informer.stop()
        for server in self._servers.values():
            server.close()  # first, so no connection arrives while the others end
        self._servers.clear()
        tasks, self._tasks = self._tasks, []
        connections, self._connections = set(self._connections), set()
        for task in (*tasks, *connections):
            task.cancel()
        await asyncio.gather(*tasks, *connections, return_exceptions=True)
        self._failed.clear()
        self._plan = Plan()
        self._targets = {}
        await self._notify()

    async def __aenter__(self) -> ServiceProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ observing

    def status(self) -> ProxyStatus:
        by_key = {lst.key: lst for lst in self._plan.listeners}
        return ProxyStatus(
            desired=self._plan.listeners,
            listening=frozenset(by_key[k] for k in self._servers if k in by_key),
            failed=FrozenDict({by_key[k]: why for k, why in self._failed.items()
                               if k in by_key}),
            routes=self._plan.routes,
        )

    async def wait_until(self, predicate: Callable[[ProxyStatus], bool]) -> ProxyStatus:
        """Return the first status (now or after a later sync) that satisfies
        ``predicate``. Bound it with ``asyncio.timeout`` where it may never come."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self.status()))
            return self.status()

    async def wait_listening(self, namespace: str, name: str) -> frozenset[Listener]:
        """Wait until every listener of the Service is bound — with a pod-facing address,
        including one per TCP port there (its pod port recorded first); returns them."""
        def ready(status: ProxyStatus) -> bool:
            if not status.serving(namespace, name):
                return False
            if self.pod_facing_address is None:
                return True
            ports = {ref for ref in status.routes
                     if (ref.namespace, ref.name) == (namespace, name)}
            facing = {lst.service for lst in status.listeners_of(namespace, name)
                      if lst.kind == "pod-facing"}
            return ports <= facing

        status = await self.wait_until(ready)
        return status.listeners_of(namespace, name)

    async def wait_closed(self, namespace: str, name: str) -> None:
        """Wait until the Service has no listener left (after deletion)."""
        await self.wait_until(lambda s: not s.listeners_of(namespace, name))

    # ------------------------------------------------------------------ reconciling

    async def _loop(self) -> None:
        while True:
            await self._next_work()
            await self._sync_guarded()

    async def _next_work(self) -> None:
        """Wait for a change, or for the retry interval while something failed."""
        if self._failed or self._retry:
            waiter = asyncio.ensure_future(self._dirty.wait())
            timer = asyncio.ensure_future(self.clock.sleep(self.retry_interval))
            try:
                await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                timer.cancel()
        else:
            await self._dirty.wait()
        self._dirty.clear()

    async def _sync_guarded(self) -> None:
        try:
            await self.sync()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The proxy must outlive any one bad object or bug in a sync: log, retry.
            log.exception("service proxy sync failed; retrying")
            self._retry = True

    async def sync(self) -> None:
        """Reconcile listeners and routes with the informer caches (idempotent)."""
        self._retry = False  # set again below if a write fails
        services = self._services.list()
        # A proxy that records pod ports listens on them at once (and keeps listening
        # while a client's PUT has dropped the annotation); one that does not follows
        # the annotations other proxies wrote.
        assignment = await self._record_pod_ports(services) if self.assigns_pod_ports else None
        plan = compute_plan(services, self._endpoints.list(), node_address=self.bind_address,
                            pod_address=self.pod_facing_address,
                            pod_ports=pod_port_refs(services, assignment))
        self._report(plan.warnings)
        # Routes first: a connection accepted from here on sees the new endpoints.
        self._plan = plan
        self._targets = {lst.key: lst.service for lst in plan.listeners}
        self._balancers = {ref: b for ref, b in self._balancers.items() if ref in plan.routes}
        for key in [k for k in self._servers if k not in self._targets]:
            self._servers.pop(key).close()  # established connections live on
            log.info("proxy: closed listener %s:%s", *key)
        for key in [k for k in self._failed if k not in self._targets]:
            del self._failed[key]
        for lst in sorted(plan.listeners):
            if lst.key not in self._servers:
                await self._open(lst)
        await self._notify()

    async def _open(self, lst: Listener) -> None:
        try:
            server = await asyncio.start_server(functools.partial(self._accept, lst.key),
                                                lst.address, lst.port, reuse_address=True)
        except OSError as err:
            reason = os.strerror(err.errno) if err.errno else str(err)
            why = (f"cannot listen on {lst.address}:{lst.port} ({lst.kind} of service "
                   f"{lst.service}): {reason}")
            if self._failed.get(lst.key) != why:
                log.error("proxy: %s; retrying every %s s", why, self.retry_interval)
            self._failed[lst.key] = why
            return
        if self._failed.pop(lst.key, None):
            log.info("proxy: %s now listening after earlier failures", lst)
        else:
            log.info("proxy: listening on %s", lst)
        self._servers[lst.key] = server

    def _report(self, warnings: Sequence[str]) -> None:
        """Log each problem once while it lasts (a sync runs on every event)."""
        current = set(warnings)
        for line in warnings:
            if line not in self._warned:
                log.warning("proxy: %s", line)
        self._warned = current

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _record_pod_ports(self, services: list[Service]
                                ) -> dict[tuple[str, str], dict[int, int]]:
        """Write the pod-port annotation where it is missing or stale (``podports.py``);
        returns the assignment."""
        uids = {s.metadata.uid for s in services}
        for svc in services:
            recorded = read_pod_ports(svc)
            if recorded:
                self._remembered[svc.metadata.uid] = recorded
        self._remembered = {u: p for u, p in self._remembered.items() if u in uids}
        self._written = {u: w for u, w in self._written.items() if u in uids}
        by_key = {(s.metadata.namespace, s.metadata.name): s for s in services}
        wanted = assign_pod_ports(services, self.pod_port_range, self._remembered)
        for key, ports in wanted.items():
            svc = by_key[key]
            meta = svc.metadata
            if ports == read_pod_ports(svc):
                self._written.pop(meta.uid, None)
                continue
            value = format_pod_ports(ports)
            if self._written.get(meta.uid) == (meta.resource_version, value):
                continue  # written; waiting for the watch to bring it back
            patch = {"metadata": {"resourceVersion": meta.resource_version,
                                  "annotations": {POD_PORTS_ANNOTATION: value}}}
            try:
                await self.client.patch(Service, meta.name, patch, namespace=meta.namespace,
                                        patch_type="merge")
            except (Conflict, NotFound):
                pass  # a newer version (or the deletion) is on its way through the watch
            except KstateError as err:
                log.warning("proxy: cannot record pod ports of service %s/%s: %s",
                            meta.namespace, meta.name, err)
                self._retry = True
                continue
            self._remembered[meta.uid] = ports
            self._written[meta.uid] = (meta.resource_version, value)
        return wanted

    # ------------------------------------------------------------------ forwarding

    async def _accept(self, key: Key, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            ref = self._targets.get(key)
            peer = writer.get_extra_info("peername")
            client_ip = str(peer[0]) if peer else ""
            upstream = await self._dial(ref, client_ip) if ref is not None else None
            if upstream is None:
                writer.transport.abort()  # a reset: "refused", like kube-proxy's REJECT
                return
            await _relay((reader, writer), upstream)
        except asyncio.CancelledError:
            # stop() ends connections by cancelling their tasks. asyncio's server asks a
            # finished handler task for its exception and logs a cancelled one as an
            # error, so the handler ends normally once the connection is torn down.
            writer.transport.abort()
        finally:
            self._connections.discard(task)

    async def _dial(self, ref: PortRef, client_ip: str) -> Streams | None:
        """Connect to a backend of ``ref``: one attempt per connect timeout, each on a
        backend not tried yet; the routes are re-read per attempt so an endpoint change
        during the retries is honoured."""
        tried: set[Backend] = set()
        for timeout in self.connect_timeouts:
            route = self._plan.routes.get(ref)
            if route is None:
                return None
            backend, state = pick(route.backends, client_ip,
                                  self._balancers.get(ref, Balancer()), self.clock.monotonic(),
                                  affinity_timeout=route.affinity_timeout,
                                  exclude=frozenset(tried))
            self._balancers[ref] = state
            if backend is None:
                break
            try:
                return await self._within(timeout,
                                          asyncio.open_connection(backend.ip, backend.port))
            except (OSError, TimeoutError) as err:
                log.info("proxy: service %s: endpoint %s failed (%s); trying another",
                         ref, backend, err)
                tried.add(backend)
        if tried:
            log.warning("proxy: service %s: no endpoint answered (tried %s)", ref,
                        ", ".join(str(b) for b in sorted(tried)))
        return None

    async def _within(self, seconds: float, aw: Awaitable[T]) -> T:
        """``aw`` bounded by ``seconds`` of the injected clock."""
        task = asyncio.ensure_future(aw)
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            timer.cancel()
        if task in done:
            return task.result()
        task.cancel()
        task.add_done_callback(_discard_late)
        raise TimeoutError(f"no answer within {seconds} s")


def _discard_late(task: asyncio.Future[Any]) -> None:
    """A connect that completed after its timeout: close it, and retrieve its error so
    asyncio does not report it as never retrieved."""
    if task.cancelled() or task.exception() is not None:
        return
    result = task.result()
    if isinstance(result, tuple) and len(result) == 2:
        result[1].close()


async def _relay(a: Streams, b: Streams) -> None:
    """Copy bytes both ways until both sides have finished. A half-close (EOF) is passed
    on, so request/response protocols that shut down their sending side work; an error
    on either side tears down both."""
    writers = (a[1], b[1])

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(_CHUNK):
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof() and not dst.is_closing():
                dst.write_eof()
        except (ConnectionError, OSError):
            for writer in writers:
                writer.transport.abort()

    try:
        await asyncio.gather(pump(a[0], b[1]), pump(b[0], a[1]))
    finally:
        for writer in writers:
            with contextlib.suppress(Exception):
                writer.close()


__all__ = ["DEFAULT_CONNECT_TIMEOUTS", "ProxyStatus", "ServiceProxy"]
