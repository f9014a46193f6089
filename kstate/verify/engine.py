"""The whole engine in one process, driven deterministically: the property tester's rig.

Where it sits: ``kstate.verify`` — the third executor of ARCHITECTURE §1. The stateful
machines (``kstate.verify.stateful``), ``kstate fuzz`` and ``kstate verify --replay``
(``kstate.verify.replay``) drive the *real* components through it::

    ApiCore (memory store, seeded rng, FakeClock)
      <- Channel (one per component: cut it = a partition; gate it = a lagging watch)
           ControllerManager  Scheduler  NodeAgent x N  [ServiceProxy]
                                              -> FakeRuntime x N (seeded) | Docker

Nothing here decides anything: the components are the daemon's own, wired as
``kstate up`` wires them. What the engine adds is control:

* **faults as operations** — ``partition(node)`` / ``heal(node)`` cut one agent's channel
  (its heartbeats and writes fail, its watches break; its containers keep running, as on
  a real node cut off from the control plane); ``restart_controller_manager()``,
  ``restart_scheduler()``, ``restart_agent(node)`` and ``restart_all()`` rebuild
  components from the store alone (``restart_all`` even the API core), keeping the store
  and the runtimes, so containers survive as they do on a node;
* **the fuzz's fault seam** — every component reaches the API core through its own
  ``Channel``, the one client its informers and executor use: ``hold`` / ``release``
  (in order or reordered across kinds), ``drop`` and ``expire`` a watch, a per-kind
  delay line (``EngineConfig.delays``), ``fail_write`` (409, 500, or a timeout after the
  write was applied) and ``crash_after`` (frozen after N writes, restarted by ``drain``);
  beside it ``fail_readiness`` (a prober in front of the agent's) and ``skew`` (one
  component's clock off by at most ``MAX_SKEW``) — kstate/verify/faults.py;
* **time** — the clock is a ``FakeClock``; ``advance(seconds)`` moves it deadline by
  deadline, letting every woken task run at each one (a heartbeat every 10 s really
  happens every 10 s);
* **quiescence** — ``drain()`` returns once no task can run, and ``settle()`` drives the
  cluster to rest (below);
* **history** — a store watch from revision 1 checks every change of every object
  against its lifecycle machine (``kstate.api.lifecycle.check_change``) and records
  facts the invariants need (``History``).

How quiescence is detected, without wall-clock sleeps: every component runs on this
event loop, and with the memory store and the fake runtime every wait is on an asyncio
future that only another task, or the FakeClock, can resolve. ``drain`` yields
(``asyncio.sleep(0)``) and, when it runs again, looks at the loop's ready queue: empty
means every other task is blocked on a future — nothing can happen until the clock moves
or the test acts. (A task's wake-up is scheduled with ``call_soon``, so it is in the
ready queue by the time we look.) With Docker (or a store doing I/O in threads) a task
can also wait on a socket or a thread, which the ready queue does not show, so those
adapters are wrapped to count calls in flight and ``drain`` also waits — on an event,
bounded in wall time — until none is. ``settle`` then alternates ``drain`` and
``FakeClock.advance`` to the next deadline until ``unsettled()`` finds nothing left to do
(or a bound of fake time passes): work queues empty, every RC at its replicas with
Ready pods, endpoints current, no pod Terminating on a reachable node, no orphan
container. Everything else is deterministic for a seed: the API core's rng, the fake
runtimes' seeds and the FakeClock's wake-up order (deadline, then arrival); the ready
queue is FIFO. One caveat: some components iterate Python sets of strings, whose order
depends on ``PYTHONHASHSEED``, so a run reproduces exactly in another process only with
the same hash seed (``kstate fuzz`` pins it).

>>> import asyncio
>>> async def demo():
...     engine = Engine(EngineConfig(nodes=1, seed=3))
...     await engine.start()
...     try:
...         return (await engine.settle()).converged
...     finally:
...         await engine.stop()
>>> asyncio.run(demo())
True
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs

from kstate.api.client import ApiClient, LocalClient, Watcher
from kstate.api.codec import from_dict
from kstate.api.frozen import FrozenDict
from kstate.api.helpers import controller_of, get_condition, selector_matches
from kstate.api.lifecycle import check_change, pod_state
from kstate.api.meta import KubeObject, Preconditions
from kstate.api.objects import (
    Endpoints,
    Lease,
    Namespace,
    Node,
    Pod,
    ReplicationController,
    Scale,
    Service,
)
from kstate.api.registry import REGISTRY, KindInfo
from kstate.api.server.core import ApiCore, Deleted, ObjectList
from kstate.clock import Clock, FakeClock
from kstate.control import endpoints as ep_controller
from kstate.control import gc, nodelifecycle, replication
from kstate.control import scheduler as sched
from kstate.control.commands import Delete, Evict
from kstate.control.informer import Informer, object_key
from kstate.control.manager import (
    LEASE_NAMESPACE,
    ControllerManager,
    ManagerSettings,
    Reconcilers,
)
from kstate.control.pods import is_active
from kstate.control.schedulerd import Scheduler
from kstate.control.workqueue import WorkQueue
from kstate.errors import (
    Compacted,
    Conflict,
    IllegalTransition,
    InternalError,
    KstateError,
    ServerTimeout,
    Unavailable,
)
from kstate.machines.pod import FINISHED_STATES, BackOffPolicy
from kstate.node.agent import AgentOptions, NodeAgent, default_prober
from kstate.runtime.base import (
    NODE_NAME,
    POD_NAME,
    POD_NAMESPACE,
    ContainerRuntime,
    ContainerState,
)
from kstate.store import Backend, open_store
from kstate.verify.faults import MAX_SKEW, ProbeFaults, SkewedClock

log = logging.getLogger("kstate.verify.engine")

K = TypeVar("K", bound=KubeObject)

#: The model checker's initial time (``kstate.verify.system.scenario.T0``).
T0 = 1_700_000_000.0
#: Calls on the loop between two looks at the ready queue before ``drain`` gives up: a
#: component that never stops being runnable is a livelock, and a bug.
DRAIN_LIMIT = 200_000
#: Taints the node lifecycle controller puts on a node it thinks is down.
_HEALTH_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")

ReplicationFn = Callable[..., list[Any]]
#: The lag of a hold: events wait until released.
HOLD = 1 << 62
#: How an injected write failure looks to the component (``Channel.fail_write``).
WRITE_FAILURES = ("conflict", "internal", "timeout")


class EngineError(KstateError):
    """The engine could not be driven: a livelock, an I/O call that never returned."""


def _capacity(value: Mapping[str, str]) -> FrozenDict[str, str]:
    return FrozenDict(value)


def _lags(value: Mapping[str, int]) -> FrozenDict[str, int]:
    return FrozenDict(value)


def _delays(value: Mapping[str, float]) -> FrozenDict[str, float]:
    for key, seconds in value.items():
        component, _, kind = key.partition("/")
        if component not in ("controller-manager", "scheduler", "node") or not kind \
                or seconds < 0:
            raise KstateError(f"delays[{key!r}]: want '<controller-manager|scheduler|node>/"
                              f"<Kind>': seconds >= 0, got {seconds}")
    return FrozenDict(value)


def _options(value: Mapping[str, Any]) -> FrozenDict[str, Any]:
    return FrozenDict(value)


def _reconcilers(value: Mapping[str, ReplicationFn]) -> FrozenDict[str, ReplicationFn]:
    unknown = set(value) - {"endpoints", "gc"}
    if unknown:
        raise KstateError(f"reconcilers {sorted(unknown)}: only endpoints and gc swap here "
                          "(replication_fn, nodelifecycle_fn for the others)")
    return FrozenDict(value)


@attrs.frozen
class EngineConfig:
    """What to build. Every default is the daemon's, except where noted."""

    nodes: int = 3
    seed: int = 0
    #: a store URL (``memory://`` is the deterministic one; see the module docstring)
    store: str = "memory://"
    #: ``fake`` (one seeded FakeRuntime per node) or ``docker`` (one engine, all nodes)
    runtime: str = "fake"
    #: node names are ``<node_prefix>1..N`` (the model checker's ``node-1``...)
    node_prefix: str = "node-"
    #: or exactly these (a scenario's own names); ``nodes`` is then their number
    node_names: tuple[str, ...] = ()
    proxy: bool = False
    start: float = T0
    manager: ManagerSettings = attrs.field(factory=ManagerSettings)
    backoff: BackOffPolicy = attrs.field(factory=BackOffPolicy)
    lease_interval: float = 10.0
    status_interval: float = 10.0
    capacity: FrozenDict[str, str] = attrs.field(
        default=FrozenDict({"cpu": "4", "memory": "8Gi", "pods": "110"}), converter=_capacity)
    #: swap the replication / node lifecycle reconciler (a seeded bug, for replays)
    replication_fn: ReplicationFn | None = attrs.field(default=None, eq=False)
    nodelifecycle_fn: ReplicationFn | None = attrs.field(default=None, eq=False)
    #: what each node agent's pod worker sees (a seeded bug: a distorted view)
    agent_view_fn: Callable[[Any], Any] | None = attrs.field(default=None, eq=False)
    #: ... and the endpoints / GC reconcilers (``endpoints``, ``gc``: a seeded bug)
    reconcilers: FrozenDict[str, ReplicationFn] = attrs.field(
        default=FrozenDict(), converter=_reconcilers, eq=False)
    #: False: components only follow their watches; the caller runs every sync (replay)
    autonomous: bool = True
    #: runtime options passed to each FakeRuntime (programs, start_delay, ...)
    fake_options: FrozenDict[str, Any] = attrs.field(default=FrozenDict(),
                                                     converter=_options)
    #: wall-clock bound on one runtime/store call in flight (Docker), seconds
    io_timeout: float = 120.0
    #: watch events each component may have held back (``controller-manager``,
    #: ``scheduler``, ``node``): ``Channel.deliver`` releases them one by one (replay)
    lags: FrozenDict[str, int] = attrs.field(default=FrozenDict(), converter=_lags)
    #: watch delays, ``{"<component>/<kind>": seconds}`` (component ``node``: every
    #: agent): each event of that watch reaches the component that long after the
    #: store sent it (a lagging informer for a whole run: ``kstate fuzz``)
    delays: FrozenDict[str, float] = attrs.field(default=FrozenDict(), converter=_delays)


# --------------------------------------------------------------------------- channels


class Channel(ApiClient):
    """One component's connection to the API core, with the faults a network has.

    ``cut()`` makes every call fail with ``Unavailable`` and breaks every open watch (a
    partition); ``heal()`` lets calls through again (the component's own retry logic
    resumes). ``gate(kind, lag)`` holds watch events of ``kind`` back: at most ``lag``
    wait, each ``deliver(kind)`` releases the oldest (the model checker's bounded
    staleness, reproduced for ``--replay``). Writes refused as illegal lifecycle moves
    are recorded on the engine (``refused``).

    The watch and write faults of ``kstate fuzz`` (Sieve's stale views, intermediate
    states and unobserved states), each a plain call the harness makes:

    * ``hold(kind)`` holds every event of ``kind`` (``"*"``: every kind) until
      ``release(kinds, reorder)`` delivers them — in arrival order, or with
      ``reorder`` each kind's backlog in turn, the kind that fell behind last first: the
      component then sees a later change of one kind before an earlier change of
      another (never two events of one watch out of order: one watch stream is ordered
      by resourceVersion in Kubernetes, and the informers rely on it);
    * ``drop(kind)`` breaks the open watches of ``kind`` (the informer resumes from its
      revision after its retry delay), ``expire(kind)`` ends them with 410 Gone (it
      relists at once, reporting what vanished as deletions);
    * ``fail_write(after, how)`` makes the write ``after`` writes from now fail with a
      409 Conflict, a 500, or a timeout (the write is applied, the answer lost);
    * ``crash_after(writes)`` freezes the component after that many more writes: its
      next call never returns, and the engine restarts it once drained (a crash between
      two writes of one sync).
    """

    def __init__(self, name: str, inner: ApiClient,
                 on_refused: Callable[[str, IllegalTransition], None] | None = None,
                 clock: FakeClock | None = None) -> None:
        self.name = name
        self.inner = inner
        self.clock = clock
        #: kind -> seconds every event of that kind waits before delivery (needs a clock)
        self.delays: dict[str, float] = {}
        self.is_cut = False
        self.gates: dict[str, int] = {}
        #: the lag of every kind without its own gate (None: events pass at once)
        self.default_lag: int | None = None
        self._watchers: list[_ChannelWatcher[Any]] = []
        self._on_refused = on_refused
        #: arrival order of held events, across this channel's watches
        self._arrivals = itertools.count()
        #: pending write faults: [writes still to let through, how the next one fails]
        self._write_faults: list[list[Any]] = []
        #: writes left before the component freezes (None: no crash armed)
        self._crash_in: int | None = None
        #: the component froze (``crash_after``): the engine restarts it
        self.crashed = False
        #: writes that went through this channel (for reports)
        self.writes = 0

    # ------------------------------------------------------------------ faults

    def cut(self) -> None:
        self.is_cut = True
        for watcher in list(self._watchers):
            watcher.fail(self._unavailable())

    def heal(self) -> None:
        self.is_cut = False

    def gate(self, kind: str, lag: int) -> None:
        self.gates[kind] = lag

    def pending(self, kind: str) -> int:
        """Events of ``kind`` held back (not yet delivered to the component)."""
        return sum(w.held() for w in self._watchers if w.kind == kind)

    def deliver(self, kind: str) -> bool:
        """Release the oldest held event of ``kind``; False when none is held."""
        return any(w.release() for w in self._watchers if w.kind == kind)

    def hold(self, kind: str) -> None:
        """Hold every event of ``kind`` (``"*"``: of every kind) until ``release``."""
        if kind == "*":
            self.default_lag = HOLD
        else:
            self.gates[kind] = HOLD

    def held_kinds(self) -> list[str]:
        """Kinds with events held back now."""
        return sorted({w.kind for w in self._watchers if w.held()})

    def release(self, kinds: Iterable[str] = ("*",), reorder: bool = False) -> int:
        """Lift the holds on ``kinds`` and deliver what they held back (see the class
        docstring); the number of events delivered."""
        kinds = set(kinds)
        every = "*" in kinds
        if every:
            self.gates = {k: v for k, v in self.gates.items() if v != HOLD}
            if self.default_lag == HOLD:
                self.default_lag = None
        else:
            self.gates = {k: v for k, v in self.gates.items()
                          if not (v == HOLD and k in kinds)}
        watchers = [w for w in self._watchers if w.held() and (every or w.kind in kinds)]
        if reorder:
            # Each watch's backlog in turn, the one whose oldest event is newest first.
            watchers.sort(key=lambda w: -w.oldest())
            return sum(w.release_all() for w in watchers)
        released = 0
        while watchers:
            oldest = min(watchers, key=lambda w: w.oldest())
            released += oldest.release()
            watchers = [w for w in watchers if w.held()]
        return released

    def drop(self, kind: str) -> int:
        """Break the open watches of ``kind`` (``"*"``: all); how many broke."""
        return self._break(kind, Unavailable(f"{self.name}: watch dropped"))

    def expire(self, kind: str) -> int:
        """End the open watches of ``kind`` with 410 Gone: the informers relist."""
        return self._break(kind, Compacted(f"{self.name}: resourceVersion expired (410)"))

    def _break(self, kind: str, error: KstateError) -> int:
        broken = [w for w in self._watchers if kind in ("*", w.kind)]
        for watcher in broken:
            watcher.fail(error)
        return len(broken)

    def fail_write(self, after: int, how: str) -> None:
        """The write ``after`` writes from now fails: ``conflict`` (409), ``internal``
        (500) or ``timeout`` (applied, but the component never hears so)."""
        if how not in WRITE_FAILURES:
            raise ValueError(f"write failure {how!r}: choose one of {', '.join(WRITE_FAILURES)}")
        self._write_faults.append([after, how])

    def crash_after(self, writes: int) -> None:
        """Freeze the component once ``writes`` more writes went through."""
        self._crash_in = writes

    def _unavailable(self) -> Unavailable:
        return Unavailable(f"{self.name}: cut off from the API server (partition)")

    async def _call(self, coro: Awaitable[Any], write: bool = False) -> Any:
        if self.is_cut or self.crashed or (write and self._crash_in == 0):
            if asyncio.iscoroutine(coro):
                coro.close()
            if self.is_cut:
                raise self._unavailable()
            self.crashed = True
            await asyncio.get_running_loop().create_future()  # frozen: never returns
        failure = self._write_failure() if write else None
        if failure == "conflict" or failure == "internal":
            if asyncio.iscoroutine(coro):
                coro.close()
            raise (Conflict(f"{self.name}: injected conflict") if failure == "conflict"
                   else InternalError(f"{self.name}: injected internal error"))
        try:
            result = await coro
        except IllegalTransition as err:
            if self._on_refused is not None:
                self._on_refused(self.name, err)
            raise
        if write:
            self.writes += 1
            if self._crash_in is not None:
                self._crash_in -= 1
        if failure == "timeout":
            raise ServerTimeout(f"{self.name}: injected timeout (the write was applied)")
        return result

    def _write_failure(self) -> str | None:
        """Count one write against the armed write faults; how it fails, if it does."""
        how = None
        for fault in self._write_faults:
            if fault[0] == 0 and how is None:
                how = fault[1]
            fault[0] -= 1
        self._write_faults = [f for f in self._write_faults if f[0] >= 0]
        return how

    # ------------------------------------------------------------------ ApiClient

    async def get(self, kind: type[K], name: str, namespace: str = "") -> K:
        return cast(K, await self._call(self.inner.get(kind, name, namespace)))

    async def list(self, kind: type[K], namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int | None = None,
                   continue_token: str = "", resource_version: str = "") -> ObjectList[K]:
        return cast(ObjectList[K], await self._call(self.inner.list(
            kind, namespace, label_selector=label_selector, field_selector=field_selector,
            limit=limit, continue_token=continue_token, resource_version=resource_version)))

    async def create(self, obj: K, *, dry_run: bool = False,
                     field_validation: str = "Strict") -> K:
        return cast(K, await self._call(self.inner.create(
            obj, dry_run=dry_run, field_validation=field_validation), write=True))

    async def update(self, obj: K, *, dry_run: bool = False) -> K:
        return cast(K, await self._call(self.inner.update(obj, dry_run=dry_run), write=True))

    async def update_status(self, obj: K) -> K:
        return cast(K, await self._call(self.inner.update_status(obj), write=True))

    async def finalize(self, namespace: Namespace) -> Namespace:
        return cast(Namespace, await self._call(self.inner.finalize(namespace)))

    async def patch(self, kind: type[K], name: str, patch: Any, *, namespace: str = "",
                    patch_type: str = "strategic", subresource: str = "") -> K:
        return cast(K, await self._call(self.inner.patch(
            kind, name, patch, namespace=namespace, patch_type=patch_type,
            subresource=subresource), write=True))

    async def delete(self, kind: type[K], name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, propagation_policy: str = "",
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False) -> Deleted[K]:
        return cast(Deleted[K], await self._call(self.inner.delete(
            kind, name, namespace, grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy, preconditions=preconditions,
            dry_run=dry_run), write=True))

    def watch(self, kind: type[K], namespace: str = "", *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "",
              allow_bookmarks: bool = False,
              timeout_seconds: float | None = None) -> Watcher[K]:
        def open_inner() -> Watcher[K]:
            return self.inner.watch(kind, namespace, resource_version=resource_version,
                                    label_selector=label_selector,
                                    field_selector=field_selector,
                                    allow_bookmarks=allow_bookmarks,
                                    timeout_seconds=timeout_seconds)
        return _ChannelWatcher(self, kind.__name__, open_inner)

    async def bind(self, pod: str, node: str, namespace: str = "default", *,
                   uid: str = "") -> None:
        await self._call(self.inner.bind(pod, node, namespace, uid=uid), write=True)

    async def evict(self, pod: str, namespace: str = "default", *,
                    grace_period_seconds: int | None = None,
                    preconditions: Preconditions | None = None) -> None:
        await self._call(self.inner.evict(pod, namespace,
                                          grace_period_seconds=grace_period_seconds,
                                          preconditions=preconditions),
                         write=True)

    async def get_scale(self, kind: type[KubeObject], name: str,
                        namespace: str = "default") -> Scale:
        return cast(Scale, await self._call(self.inner.get_scale(kind, name, namespace)))

    async def scale(self, kind: type[KubeObject], name: str, replicas: int,
                    namespace: str = "default") -> Scale:
        return cast(Scale, await self._call(self.inner.scale(kind, name, replicas, namespace),
                                            write=True))


_END = object()


class _ChannelWatcher(Watcher[K]):
    """A watch through a channel: a pump task moves the inner stream's events into a
    local queue; a gate holds them back; a cut fails the stream."""

    def __init__(self, channel: Channel, kind: str, open_inner: Callable[[], Watcher[K]]
                 ) -> None:
        self.channel = channel
        self.kind = kind
        self._open_inner = open_inner
        self._inner: Watcher[K] | None = None
        self._pump: asyncio.Task[None] | None = None
        #: (arrival number, event) pairs held back by a gate or a hold
        self._held: collections.deque[tuple[int, Any]] = collections.deque()
        self._out: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._started = False
        #: pending delay-line releases, in creation order (a set's order would depend
        #: on object ids, and the order they are cancelled in must not)
        self._timers: dict[asyncio.Future[None], None] = {}

    # ------------------------------------------------------------------ gate

    def held(self) -> int:
        return sum(1 for _, item in self._held if _counts(item))

    def oldest(self) -> int:
        """Arrival number of the oldest held event (this channel's order)."""
        return self._held[0][0] if self._held else -1

    def release(self) -> bool:
        while self._held:
            _, item = self._held.popleft()
            self._emit(item)
            if _counts(item):
                self._flush_uncounted()
                return True
        return False

    def release_all(self) -> int:
        released = 0
        while self.release():
            released += 1
        return released

    def _flush_uncounted(self) -> None:
        # Bookmarks and errors at the head follow the event before them at once: they
        # change no cache, and holding them would only reorder them.
        while self._held and not _counts(self._held[0][1]):
            self._emit(self._held.popleft()[1])

    def _push(self, item: Any) -> None:
        channel = self.channel
        lag = channel.gates.get(self.kind, channel.default_lag)
        delay = channel.delays.get(self.kind)
        if delay and channel.clock is not None and _counts(item):
            # A delay line: each event leaves ``delay`` after it came, in order.
            self._held.append((next(channel._arrivals), item))
            timer = asyncio.ensure_future(self._release_after(channel.clock, delay))
            self._timers[timer] = None
            timer.add_done_callback(self._forget_timer)
            return
        if lag is None and not self._held:
            self._emit(item)
            return
        self._held.append((next(channel._arrivals), item))
        self._flush_uncounted()
        if delay and lag is None:
            return  # behind delayed events: leaves with them
        while self.held() > (lag if lag is not None else 0):
            self.release()

    def _forget_timer(self, timer: asyncio.Future[None]) -> None:
        self._timers.pop(timer, None)

    async def _release_after(self, clock: FakeClock, delay: float) -> None:
        await clock.sleep(delay)
        if self.channel.gates.get(self.kind, self.channel.default_lag) is None:
            self.release()  # (while held, the hold's release delivers everything)

    def _emit(self, item: Any) -> None:
        self._out.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def fail(self, error: KstateError) -> None:
        """Break the stream now (a partition): what was held is lost with it."""
        self._held.clear()
        self._out.clear()
        self._emit(error)
        if self._pump is not None:
            self._pump.cancel()

    # ------------------------------------------------------------------ Watcher

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.channel.is_cut:
            raise self.channel._unavailable()
        self._inner = self._open_inner()
        await self._inner.start()
        self.channel._watchers.append(self)
        self._pump = asyncio.ensure_future(self._run_pump())

    async def _run_pump(self) -> None:
        assert self._inner is not None
        try:
            async for item in self._inner:
                self._push(item)
        except asyncio.CancelledError:
            raise
        except KstateError as err:
            self._push(err)
            return
        self._push(_END)

    async def close(self) -> None:
        if self in self.channel._watchers:
            self.channel._watchers.remove(self)
        for timer in list(self._timers):
            timer.cancel()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
            self._pump = None
        if self._inner is not None:
            await self._inner.close()

    async def _events(self) -> AsyncIterator[tuple[str, K]]:
        await self.start()
        while True:
            while not self._out:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
            item = self._out.popleft()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def _counts(item: Any) -> bool:
    """Held events that count toward a gate's lag: object changes, not bookmarks."""
    return isinstance(item, tuple) and item[0] != "BOOKMARK"


# --------------------------------------------------------------------------- I/O counting


class _InFlight:
    """Counts adapter calls in flight so ``drain`` can wait for I/O it cannot see."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @contextlib.asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        self.count += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self.idle.set()


#: Runtime calls that return (streams -- events, followed logs -- are left alone).
_COUNTED_RUNTIME_CALLS = frozenset({
    "version", "image_present", "ensure_image", "import_image", "network_info",
    "create_sandbox", "inspect_sandbox", "remove_sandbox", "list_sandboxes",
    "create_container", "start_container", "stop_container", "kill_container",
    "remove_container", "list_containers", "inspect_container", "exec"})
_COUNTED_STORE_CALLS = frozenset({"get", "list", "revision", "create", "update", "delete",
                                  "compact"})


class _Counted:
    """A proxy whose named coroutine methods are counted in an ``_InFlight``."""

    def __init__(self, inner: Any, counted: frozenset[str], inflight: _InFlight) -> None:
        self._inner = inner
        self._counted = counted
        self._inflight = inflight

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in self._counted or not callable(value):
            return value
        inflight = self._inflight

        async def counted(*args: Any, **kwargs: Any) -> Any:
            async with inflight.call():
                return await value(*args, **kwargs)
        return counted


# --------------------------------------------------------------------------- history


@attrs.frozen
class Change:
    """One store event as the history saw it."""

    revision: int
    kind: str
    key: str
    old: KubeObject | None
    new: KubeObject | None  # None: deleted
    at: float


class History:
    """Every change in the store since revision 1, checked as it arrives.

    ``violations`` collects every change no lifecycle trigger explains (the api server
    refuses those, so one here means a writer bypassed admission), every re-binding of a
    pod to another node, every finished pod that ran again, and every uid that came
    back after its object was deleted.
    """

    def __init__(self, store: Backend, clock: FakeClock, keep: int = 0) -> None:
        self.store = store
        self.clock = clock
        self.keep = keep
        self.changes: collections.deque[Change] = collections.deque(maxlen=keep or None)
        self.violations: list[str] = []
        self.revision = 0
        self.count = 0
        self._gone: set[str] = set()  # uids deleted
        #: uid -> the revision that created it (creation order, for replays)
        self.created: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._plural = {i.plural: i for i in REGISTRY.resources() if i.plural}

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _info(self, key: str) -> KindInfo | None:
        parts = key.split("/")
        return self._plural.get(parts[2]) if len(parts) > 2 else None

    def _decode(self, info: KindInfo, value: bytes) -> KubeObject:
        obj = from_dict(info.cls, json.loads(value))
        assert isinstance(obj, KubeObject)
        return obj

    async def _follow(self) -> None:
        start = 1
        while True:
            try:
                async with self.store.watch("/registry/", start) as events:
                    async for event in events:
                        self._record(event)
                        start = event.revision + 1
                return
            except KstateError as err:  # fell behind (Compacted): a gap, said out loud
                self.violations.append(f"history: lost events after revision {start - 1}: "
                                       f"{err}")
                start = await self.store.revision() + 1

    def _record(self, event: Any) -> None:
        self.revision = event.revision
        self.count += 1
        info = self._info(event.kv.key)
        if info is None:
            return
        old = self._decode(info, event.prev_kv.value) if event.prev_kv is not None else None
        new = None if event.type == "DELETE" else self._decode(info, event.kv.value)
        now = self.clock.now()
        change = Change(event.revision, info.kind, event.kv.key, old, new, now)
        if self.keep:
            self.changes.append(change)
        where = f"revision {event.revision}, {info.kind} {event.kv.key.split('/', 3)[-1]}"
        if new is not None and new.metadata.uid not in self.created:
            self.created[new.metadata.uid] = event.revision
        if new is not None and new.metadata.uid in self._gone:
            self.violations.append(f"{where}: uid {new.metadata.uid} came back after its "
                                   "object was deleted")
        if new is None and old is not None:
            self._gone.add(old.metadata.uid)
        if old is None or new is None:
            return
        try:
            check_change(old, new, now)
        except IllegalTransition as err:
            self.violations.append(f"{where}: illegal change in the store: {err}")
        if isinstance(old, Pod) and isinstance(new, Pod):
            if old.spec.node_name and new.spec.node_name != old.spec.node_name:
                self.violations.append(f"{where}: pod moved from node {old.spec.node_name} "
                                       f"to {new.spec.node_name or '(none)'}")
            if old.status.phase in ("Succeeded", "Failed") and \
                    new.status.phase not in ("Succeeded", "Failed"):
                self.violations.append(f"{where}: a {old.status.phase} pod went back to "
                                       f"{new.status.phase}")


# --------------------------------------------------------------------------- engine


class EngineManager(ControllerManager):
    """The daemon's controller manager, with any reconciler swappable (for replaying a
    seeded bug) through ``Reconcilers`` — the views and the executor stay the daemon's —
    and the node lifecycle controller's decisions judged: no eviction while its own view
    shows every node down (the model's ``no_mass_eviction``, on the view the decision was
    made on)."""

    def __init__(self, client: ApiClient, clock: Clock, settings: ManagerSettings,
                 replication_fn: ReplicationFn | None = None,
                 nodelifecycle_fn: ReplicationFn | None = None,
                 reconcilers: Mapping[str, ReplicationFn] = FrozenDict()) -> None:
        #: evictions decided in full disruption (the engine's list survives restarts)
        self.mass_evictions: list[str] = []
        decide = nodelifecycle_fn or nodelifecycle.reconcile

        def node_lifecycle(view: nodelifecycle.NodeLifecycleView, now: float,
                           node_settings: nodelifecycle.NodeLifecycleSettings) -> list[Any]:
            commands = decide(view, now, node_settings)
            evicted = [c.name for c in commands
                       if isinstance(c, Evict) or (isinstance(c, Delete) and c.kind == "Pod")]
            if evicted and nodelifecycle.full_disruption(view.nodes):
                self.mass_evictions.append(
                    f"at {now - T0:.0f} s the node lifecycle controller evicted "
                    f"{', '.join(sorted(evicted))} while every node looked down")
            return commands

        super().__init__(client, clock, settings, reconcilers=Reconcilers(
            replication=replication_fn or replication.reconcile,
            endpoints=reconcilers.get("endpoints", ep_controller.reconcile),
            node_lifecycle=node_lifecycle,
            gc=reconcilers.get("gc", gc.reconcile)))

    async def start_informers(self) -> None:
        """Follow the store without acting (a driven manager: the caller syncs)."""
        for informer in self.informers:
            self._spawn(informer.run())
        await asyncio.gather(*(informer.synced() for informer in self.informers))


class EngineAgent(NodeAgent):
    """The daemon's node agent, with what its pod worker sees swappable (for a seeded
    bug) — everything else is inherited unchanged."""

    def __init__(self, *args: Any, view_fn: Callable[[Any], Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.view_fn = view_fn

    async def view(self, uid: str) -> Any:
        seen = await super().view(uid)
        return seen if self.view_fn is None else self.view_fn(seen)


@attrs.frozen
class Settled:
    """What ``settle`` reached: ``converged`` or the conditions still unmet."""

    converged: bool
    unmet: tuple[str, ...]
    elapsed: float  # fake seconds
    steps: int  # clock moves


@attrs.define
class EngineNode:
    """One node of the engine: its agent, its runtime, its channel."""

    name: str
    runtime: ContainerRuntime
    agent: EngineAgent
    channel: Channel
    partitioned: bool = False
    started: bool = False
    #: fake time since which this node's agent has been running and connected
    up_since: float = float("-inf")


class Engine:
    """The in-process cluster. See the module docstring; ``start`` before use."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        cfg = self.config
        if cfg.runtime not in ("fake", "docker"):
            raise KstateError(f"runtime {cfg.runtime!r}: choose fake or docker")
        if not 1 <= (len(cfg.node_names) or cfg.nodes) <= 64:
            raise KstateError("nodes must be between 1 and 64")
        start = cfg.start if cfg.runtime == "fake" else float(int(time.time()))
        self.clock = FakeClock(start)
        self.inflight = _InFlight()
        self.store: Backend = self._open_store(cfg.store)
        self.generation = 0
        self.core = self._new_core()
        self.client = LocalClient(self.core)  # the test's (the user's) own client
        self.refused: list[str] = []
        self.history = History(self.store, self.clock)
        self.node_names = list(cfg.node_names) or [
            f"{cfg.node_prefix}{i}" for i in range(1, cfg.nodes + 1)]
        self.runtimes: dict[str, ContainerRuntime] = {}
        self.nodes: dict[str, EngineNode] = {}
        self.manager: EngineManager | None = None
        self.manager_channel: Channel | None = None
        self.scheduler: Scheduler | None = None
        self.scheduler_channel: Channel | None = None
        self.proxy: Any = None
        self._docker: ContainerRuntime | None = None
        self._running = False
        #: "ns/pod" -> fake time until which its readiness probes fail (``fail_readiness``)
        self.unready: dict[str, float] = {}
        #: per component, the offset of its clock from the engine's (``skew``)
        self.skews: dict[str, SkewedClock] = {}
        #: components the engine restarted because they froze (``crash_after``)
        self.crashes: list[str] = []
        #: evictions the node lifecycle controller decided in full disruption
        self.mass_evictions: list[str] = []
        #: hold timers, in creation order (never a set: see ``_ChannelWatcher._timers``)
        self._fault_tasks: dict[asyncio.Future[None], None] = {}

    # ------------------------------------------------------------------ building

    def _open_store(self, url: str) -> Backend:
        store = open_store(url)
        if url.startswith("memory:"):
            return store
        # Threads (SQLite) or sockets (etcd) do not show in the ready queue: count them.
        return cast(Backend, _Counted(store, _COUNTED_STORE_CALLS, self.inflight))

    def _new_core(self) -> ApiCore:
        # A restarted core must not replay the uids and names of the first one: each
        # generation draws from its own stream, derived from the seed (string seeds are
        # hashed with SHA-512, not with the per-process string hash).
        rng = random.Random(f"kstate-engine/{self.config.seed}/{self.generation}")
        return ApiCore(self.store, self.clock, rng=rng)

    def _channel(self, name: str) -> Channel:
        channel = Channel(name, LocalClient(self.core), self._refused, self.clock)
        component = name.split()[0]
        channel.default_lag = self.config.lags.get(component)
        channel.delays = {key.split("/", 1)[1]: seconds
                          for key, seconds in self.config.delays.items()
                          if key.split("/", 1)[0] == component}
        return channel

    def _refused(self, who: str, err: IllegalTransition) -> None:
        self.refused.append(f"{who}: {err}")

    def _runtime(self, index: int, name: str) -> ContainerRuntime:
        cfg = self.config
        if cfg.runtime == "fake":
            from kstate.runtime.fake import FakeRuntime

            options = dict(cfg.fake_options)
            options.setdefault("pod_cidr", f"10.{200 + index // 256}.{index % 256}.0/24")
            return FakeRuntime(self.clock, seed=cfg.seed * 1000 + index, **options)
        if self._docker is None:
            from kstate.runtime import open_runtime

            self._docker = cast(ContainerRuntime, _Counted(
                open_runtime("docker"), _COUNTED_RUNTIME_CALLS, self.inflight))
        return self._docker

    def _agent(self, name: str, index: int, runtime: ContainerRuntime,
               channel: Channel) -> EngineAgent:
        cfg = self.config
        docker = cfg.runtime == "docker"
        options = AgentOptions(
            capacity=cfg.capacity, internal_ip=f"192.0.2.{index + 1}",
            backoff=cfg.backoff, lease_interval=cfg.lease_interval,
            status_interval=cfg.status_interval,
            # A fake runtime's events are in-process and never lost; Docker's come over a
            # socket, so the PLEG relist (on the fake clock) catches what they miss.
            relist_interval=1.0 if docker else None, server_port=None,
            pod_cidr="" if docker else f"10.{200 + index // 256}.{index % 256}.0/24")
        if not docker:
            # Readiness faults answer before the fake's scripted prober (Docker's network
            # prober is the agent's own, closed with it: no readiness faults there).
            options = attrs.evolve(options, prober=ProbeFaults(
                default_prober(runtime), self.unready, self.clock))
        return EngineAgent(channel, runtime, name, self.clock_of(f"node {name}"), options,
                           view_fn=cfg.agent_view_fn)

    def clock_of(self, component: str) -> SkewedClock:
        """The clock ``component`` reads (the engine's, plus that component's skew)."""
        clock = self.skews.get(component)
        if clock is None:
            clock = self.skews[component] = SkewedClock(self.clock)
        return clock

    def _new_manager(self) -> EngineManager:
        self.manager_channel = self._channel("controller-manager")
        manager = EngineManager(self.manager_channel, self.clock_of("controller-manager"),
                             self.config.manager, self.config.replication_fn,
                             self.config.nodelifecycle_fn, self.config.reconcilers)
        manager.mass_evictions = self.mass_evictions
        return manager

    def _new_scheduler(self) -> Scheduler:
        self.scheduler_channel = self._channel("scheduler")
        return Scheduler(self.scheduler_channel, self.clock_of("scheduler"))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the API core, the history, every node, the controllers (and proxy)."""
        await self.core.start()
        self.history.start()
        for index, name in enumerate(self.node_names):
            self.runtimes[name] = self._runtime(index, name)
        await self._start_components()
        self._running = True
        await self.drain()

    async def _start_components(self) -> None:
        for index, name in enumerate(self.node_names):
            channel = self._channel(f"node {name}")
            agent = self._agent(name, index, self.runtimes[name], channel)
            node = EngineNode(name, self.runtimes[name], agent, channel)
            self.nodes[name] = node
            await self._start_node(node)
        self.manager = self._new_manager()
        await self._start_manager(self.manager)
        self.scheduler = self._new_scheduler()
        await self._start_scheduler(self.scheduler)
        if self.config.proxy:
            from kstate.proxy import ServiceProxy

            self.proxy = ServiceProxy(self._channel("proxy"), self.clock,
                                      bind_address="127.0.0.1")
            await self.proxy.start()

    async def _start_node(self, node: EngineNode) -> None:
        agent = node.agent
        node.started = True
        node.up_since = self.clock.now()
        if self.config.autonomous:
            await agent.start()
            return
        # Driven: registered, its caches follow the store, but it acts only when told.
        await agent.register()
        await agent.renew_lease()
        agent._spawn(agent.pods.run(), "pods")
        agent._spawn(agent.services.run(), "services")
        await agent.pods.synced()
        await agent.services.synced()

    async def _start_manager(self, manager: EngineManager) -> None:
        if self.config.autonomous:
            await manager.start()
        else:
            await manager.start_informers()

    async def _start_scheduler(self, scheduler: Scheduler) -> None:
        if self.config.autonomous:
            await scheduler.start()
            return
        for informer in (scheduler.nodes, scheduler.pods):
            scheduler._tasks.append(asyncio.ensure_future(informer.run()))
        await asyncio.gather(scheduler.nodes.synced(), scheduler.pods.synced())

    async def _stop_components(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
            self.proxy = None
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.manager is not None:
            await self.manager.stop()
        for node in self.nodes.values():
            await node.agent.stop()

    async def stop(self) -> None:
        """Stop everything; the runtimes' containers are removed (Docker: ours only)."""
        for task in list(self._fault_tasks):
            task.cancel()
        if self._running:
            await self._stop_components()
        await self.history.stop()
        await self.core.close()
        if self.config.runtime == "docker" and self._docker is not None:
            await self._remove_docker_containers()
            await self._docker.close()
        else:
            for runtime in self.runtimes.values():
                await runtime.close()
        await self.store.close()
        self._running = False

    async def _remove_docker_containers(self) -> None:
        assert self._docker is not None
        for name in self.node_names:
            with contextlib.suppress(KstateError):
                for c in await self._docker.list_containers({NODE_NAME: name}):
                    await self._docker.remove_container(c.id)
                for s in await self._docker.list_sandboxes({NODE_NAME: name}):
                    await self._docker.remove_sandbox(s.id)

    # ------------------------------------------------------------------ faults

    async def restart_controller_manager(self) -> None:
        """A fresh manager: its expectations and rate limiter are lost, its caches
        relisted from the store."""
        assert self.manager is not None
        await self.manager.stop()
        self.manager = self._new_manager()
        await self._start_manager(self.manager)
        await self.drain()

    async def restart_scheduler(self) -> None:
        """A fresh scheduler: its assume cache and queue are rebuilt from the store."""
        assert self.scheduler is not None
        await self.scheduler.stop()
        self.scheduler = self._new_scheduler()
        await self._start_scheduler(self.scheduler)
        await self.drain()

    async def restart_agent(self, name: str) -> None:
        """A fresh agent on the same runtime: it adopts the containers it finds."""
        node = self.nodes[name]
        await node.agent.stop()
        node.channel = self._channel(f"node {name}")
        if node.partitioned:
            node.channel.cut()
        node.agent = self._agent(name, self.node_names.index(name), node.runtime,
                                 node.channel)
        node.started = False
        if node.partitioned:
            # A node cut off cannot register; it starts once healed (see ``heal``).
            return
        await self._start_node(node)
        await self.drain()

    async def restart_all(self) -> None:
        """``kill -9`` of the daemon and ``kstate up`` again: every component, the API
        core included, rebuilt from the store alone; store and containers survive.
        Partitions are lifted (a restarted agent reconnects)."""
        await self._stop_components()
        await self.core.close()
        self.generation += 1
        self.core = self._new_core()
        self.client = LocalClient(self.core)
        await self.core.start()
        for node in self.nodes.values():
            node.partitioned = False
        await self._start_components()
        await self.drain()

    async def go_autonomous(self) -> None:
        """From driven (replay) to running on its own: every component restarted from
        the store, no watch held back any more."""
        self.config = attrs.evolve(self.config, autonomous=True, lags=FrozenDict())
        await self.restart_all()

    # ------------------------------------------------------------------ fuzz faults

    def channels(self) -> dict[str, Channel]:
        """Every component's channel, by component (``controller-manager``,
        ``scheduler``, ``node <name>``)."""
        out: dict[str, Channel] = {}
        if self.manager_channel is not None:
            out["controller-manager"] = self.manager_channel
        if self.scheduler_channel is not None:
            out["scheduler"] = self.scheduler_channel
        for name, node in self.nodes.items():
            out[f"node {name}"] = node.channel
        return out

    async def hold(self, component: str, kind: str, seconds: float, *,
                   reorder: bool = False) -> None:
        """Hold ``component``'s watch events of ``kind`` (``"*"``: every kind) for
        ``seconds`` of fake time, then deliver them (``Channel.release``: in order, or
        ``reorder``ed). A restart ends the hold: the new component lists the store."""
        channel = self.channels()[component]
        channel.hold(kind)

        async def later() -> None:
            await self.clock.sleep(seconds)
            channel.release([kind], reorder=reorder)
        self._spawn_fault(later())
        await self.drain()

    def _spawn_fault(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._fault_tasks[task] = None
        task.add_done_callback(lambda done: self._fault_tasks.pop(done, None))

    def fail_readiness(self, pod_key: str, seconds: float) -> None:
        """The readiness probes of pod ``ns/name`` fail for ``seconds`` of fake time."""
        self.unready[pod_key] = self.clock.now() + seconds

    def skew(self, component: str, seconds: float) -> None:
        """Set ``component``'s clock ``seconds`` ahead of (negative: behind) the others
        (``MAX_SKEW`` bounds it). Its sleeps keep their length: only what it stamps and
        compares with stamped times moves."""
        if abs(seconds) > MAX_SKEW:
            raise ValueError(f"skew {seconds} s: at most {MAX_SKEW} s either way")
        self.clock_of(component).offset = seconds

    async def _restart_crashed(self) -> bool:
        """Restart the first component that froze (``Channel.crash_after``); False when
        none did."""
        for component, channel in self.channels().items():
            if not channel.crashed:
                continue
            self.crashes.append(component)
            if component == "controller-manager":
                await self.restart_controller_manager()
            elif component == "scheduler":
                assert self.scheduler is not None
                self.scheduler.shutdown_grace = 0.0  # killed: nothing in flight finishes
                await self.restart_scheduler()
            else:
                await self.restart_agent(component.split(" ", 1)[1])
            return True
        return False

    def partition(self, name: str) -> None:
        """Cut node ``name`` off the control plane: its heartbeats and writes fail and
        its watches break; its containers run on."""
        node = self.nodes[name]
        node.partitioned = True
        node.channel.cut()

    async def heal(self, name: str) -> None:
        """Reconnect node ``name``: the agent's own retries take it from there."""
        node = self.nodes[name]
        node.partitioned = False
        node.up_since = self.clock.now()
        node.channel.heal()
        if not node.started and self._running:
            await self._start_node(node)  # restarted while cut off
        elif not self.config.autonomous:
            await self._relist(node)
        await self.drain()

    async def _relist(self, node: EngineNode) -> None:
        """A driven agent's watches resume at once, from a fresh list (the model's Heal
        hands the kubelet a caught-up cache; the agent's own informers would wait out
        their retry delay, on a clock a replay only moves at Tick steps)."""
        agent = node.agent
        for old in (agent.pods, agent.services):
            old.stop()
        for task in list(agent._tasks):
            if task.get_name().endswith((": pods", ": services")):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                agent._tasks.remove(task)
        fresh_pods = Informer(node.channel, Pod, field_selector=f"spec.nodeName={node.name}",
                              clock=self.clock, retry_delay=agent.options.retry_delay)
        fresh_services = Informer(node.channel, Service, clock=self.clock,
                                  retry_delay=agent.options.retry_delay)
        # Seeded with what the agent knew, so the fresh list reports what vanished.
        fresh_pods.cache = dict(agent.pods.cache)
        fresh_services.cache = dict(agent.services.cache)
        fresh_pods.add_handler(agent._on_pod_event)
        agent.pods, agent.services = fresh_pods, fresh_services
        agent._spawn(fresh_pods.run(), "pods")
        agent._spawn(fresh_services.run(), "services")
        await fresh_pods.synced()
        await fresh_services.synced()

    def runtime_of(self, name: str) -> ContainerRuntime:
        return self.nodes[name].runtime

    async def crash(self, node: str, container_id: str, exit_code: int = 1) -> None:
        """A container's process dies (the fake's crash hook; Docker: a kill)."""
        runtime = self.runtime_of(node)
        crash = getattr(runtime, "crash", None)
        if crash is not None:
            crash(container_id, exit_code)
        else:
            with contextlib.suppress(KstateError):
                await runtime.kill_container(container_id, "SIGKILL")
            # Docker reports the death on its event stream (a socket the drain cannot
            # see): relist so the agent learns of it now.
            await self.nodes[node].agent.relist()
        await self.drain()

    # ------------------------------------------------------------------ time

    async def drain(self, limit: int = DRAIN_LIMIT) -> int:
        """Run every runnable task until none is left (see the module docstring);
        the number of loop turns it took. ``EngineError`` on a livelock."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)
        turns = 0
        while turns < limit:
            await asyncio.sleep(0)
            turns += 1
            if ready is not None and ready:
                continue
            if ready is None and turns < 200:
                continue  # no ready queue to look at: a fixed number of turns instead
            if self.inflight.count:
                try:
                    await asyncio.wait_for(self.inflight.idle.wait(), self.config.io_timeout)
                except TimeoutError:
                    raise EngineError(f"{self.inflight.count} runtime/store call(s) did not "
                                      f"return within {self.config.io_timeout:.0f} s") from None
                continue
            if self._running and await self._restart_crashed():
                continue
            return turns
        raise EngineError(f"the engine did not come to rest within {limit} loop turns "
                          "(a component keeps itself runnable: livelock)")

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of fake time pass, deadline by deadline, every woken task
        running at each one."""
        end = self.clock.now() + seconds
        await self.drain()
        while True:
            nxt = self.clock.next_deadline()
            if nxt is None or nxt > end:
                break
            self.clock.advance(max(0.0, nxt - self.clock.now()))
            await self.drain()
        self.clock.advance(max(0.0, end - self.clock.now()))
        await self.drain()

    async def settle(self, max_seconds: float = 1200.0,
                     goal: Callable[[], Awaitable[list[str]]] | None = None, *,
                     stall: float | None = None,
                     stop: Callable[[], Awaitable[list[str]]] | None = None) -> Settled:
        """Drive the cluster to rest: drain, and while something is left to do, move the
        clock to the next deadline; stop when ``unsettled()`` (and ``goal``) report
        nothing, or after ``max_seconds`` of fake time — or sooner, unsettled, when the
        same things stayed undone for ``stall`` seconds (nothing moves: no need to wait
        out the bound) or ``stop`` reports a violation (then that is what is unmet)."""
        start = self.clock.now()
        steps = 0
        last: tuple[list[str], float] = ([], start)
        while True:
            await self.drain()
            unmet = await self.unsettled()
            if goal is not None:
                unmet += await goal()
            if not unmet:
                return Settled(True, (), self.clock.now() - start, steps)
            now = self.clock.now()
            if unmet != last[0]:
                last = (unmet, now)
            broken = await stop() if stop is not None else []
            stalled = stall is not None and now - last[1] > stall
            nxt = self.clock.next_deadline()
            if broken or stalled or nxt is None or nxt - start > max_seconds:
                return Settled(False, tuple(broken or unmet), now - start, steps)
            self.clock.advance(max(0.0, nxt - now))
            steps += 1

    # ------------------------------------------------------------------ reading

    async def objects(self, kind: type[K]) -> list[K]:
        """Every object of ``kind`` in the store now (a fresh list: no cache)."""
        return list((await self.client.list(kind)).items)

    def reachable(self, node: str) -> bool:
        n = self.nodes.get(node)
        return n is not None and not n.partitioned

    def queues(self) -> dict[str, WorkQueue]:
        out: dict[str, WorkQueue] = {}
        if self.manager is not None:
            out["controller-manager/rc"] = self.manager.rc_queue
            out["controller-manager/endpoints"] = self.manager.endpoints_queue
        for name, node in self.nodes.items():
            if not node.partitioned:
                out[f"node {name}"] = node.agent.queue
        return out

    def informers(self) -> dict[str, Informer[Any]]:
        """Every informer cache of every component, by a readable name."""
        out: dict[str, Informer[Any]] = {}
        if self.manager is not None:
            for inf in self.manager.informers:
                out[f"controller-manager/{inf.kind.__name__}"] = inf
        if self.scheduler is not None:
            out["scheduler/Pod"] = self.scheduler.pods
            out["scheduler/Node"] = self.scheduler.nodes
        for name, node in self.nodes.items():
            out[f"node {name}/Pod"] = node.agent.pods
            out[f"node {name}/Service"] = node.agent.services
        return out

    async def containers(self) -> dict[str, list[Any]]:
        """Running app containers per node, as each runtime lists them."""
        out: dict[str, list[Any]] = {}
        for name in self.node_names:
            listed = await self.runtime_of(name).list_containers({NODE_NAME: name})
            out[name] = [c for c in listed if c.state is ContainerState.RUNNING]
        return out

    async def unsettled(self) -> list[str]:
        """What keeps the cluster from being at rest (empty: settled). See ``settle``."""
        unmet: list[str] = []
        for name, queue in self.queues().items():
            if queue_busy(queue):
                unmet.append(f"{name}: work queue not empty")
        now = self.clock.now()
        pods = await self.objects(Pod)
        rcs = await self.objects(ReplicationController)
        nodes = {n.metadata.name: n for n in await self.objects(Node)}
        for name, node_obj in sorted(nodes.items()):
            if not self.reachable(name):
                continue
            ready = get_condition(node_obj.status.conditions, "Ready")
            health = [t.key for t in node_obj.spec.taints
                      if t.key.startswith(_HEALTH_TAINTS)]
            if ready is None or ready.status != "True" or health:
                unmet.append(f"node {name}: not back to Ready ({', '.join(health) or 'no'} "
                             "health taints)")
        for rc in rcs:
            name = rc.metadata.name
            mine = [p for p in pods if _owned_by(p, rc)]
            if rc.metadata.deletion_timestamp:
                if not any(not self.reachable(p.spec.node_name) for p in mine):
                    unmet.append(f"rc {name}: still being deleted")
                continue
            active = [p for p in mine if is_active(p)]
            want = replication.desired_replicas(rc)
            if len(active) != want:
                unmet.append(f"rc {name}: {len(active)} active pods, want {want}")
            if rc.status.replicas != len(active) or \
                    rc.status.observed_generation < rc.metadata.generation:
                unmet.append(f"rc {name}: status not current")
        for pod in pods:
            pname = f"pod {pod.metadata.name}"
            node: str = pod.spec.node_name
            state = pod_state(pod, now)
            if node and not self.reachable(node):
                continue  # the node cannot tell its story until it is back
            if pod.metadata.deletion_timestamp:
                unmet.append(f"{pname}: {state} on {node or 'no node'}")
            elif not node:
                scheduled = get_condition(pod.status.conditions, "PodScheduled")
                if scheduled is None or scheduled.reason != "Unschedulable":
                    unmet.append(f"{pname}: waiting for the scheduler")
            elif state in FINISHED_STATES:
                continue
            elif state != "Ready" and nodes.get(node) is not None:
                unmet.append(f"{pname}: {state} on {node}")
        unmet += await self.endpoints_mismatch(pods)
        # A node cut off cannot remove the containers of a pod force-deleted meanwhile.
        unmet += [o for o in await self.orphans(pods)
                  if self.reachable(o.split()[1])]
        everyone = all(self.reachable(n) for n in self.node_names)
        decisions = fresh_decisions(self, await Fresh.read(self), node_lifecycle=everyone)
        unmet += [f"a fresh {key.split('/')[0]} would still act on {key}"
                  for key in sorted(decisions)]
        return unmet

    async def endpoints_mismatch(self, pods: list[Pod] | None = None) -> list[str]:
        """Services whose Endpoints do not list exactly what the controller would write
        from the store now (the ready, matching, non-terminating pods)."""
        pods = pods if pods is not None else await self.objects(Pod)
        out = []
        by_key = {f"{e.metadata.namespace}/{e.metadata.name}": e
                  for e in await self.objects(Endpoints)}
        for svc in await self.objects(Service):
            key = f"{svc.metadata.namespace}/{svc.metadata.name}"
            if not svc.spec.selector:
                continue
            want = ep_controller.desired_subsets(
                svc, [p for p in pods if p.metadata.namespace == svc.metadata.namespace])
            current = by_key.get(key)
            have = current.subsets if current is not None else ()
            if _addresses(have) != _addresses(want):
                out.append(f"endpoints {key}: {sorted(_addresses(have))} != "
                           f"{sorted(_addresses(want))}")
        return out

    async def orphans(self, pods: list[Pod] | None = None) -> list[str]:
        """Running containers whose pod is not in the store bound to their node."""
        pods = pods if pods is not None else await self.objects(Pod)
        bound = {(p.spec.node_name, p.metadata.namespace, p.metadata.name, p.metadata.uid)
                 for p in pods}
        out = []
        for node, running in (await self.containers()).items():
            for c in running:
                labels = c.labels
                ident = (node, labels.get(POD_NAMESPACE, ""), labels.get(POD_NAME, ""),
                         c.pod_uid)
                if ident not in bound:
                    out.append(f"node {node}: container {c.id[:12]} of pod "
                               f"{ident[1]}/{ident[2]} ({c.pod_uid[:8]}) has no pod bound "
                               "there")
        return out


# --------------------------------------------------------------------------- decisions


@attrs.frozen
class Fresh:
    """The store as a freshly started component lists it."""

    pods: tuple[Pod, ...]
    rcs: tuple[ReplicationController, ...]
    services: tuple[Service, ...]
    endpoints: tuple[Endpoints, ...]
    nodes: tuple[Node, ...]
    leases: tuple[Lease, ...]

    @classmethod
    async def read(cls, engine: Engine) -> Fresh:
        """A fresh list of every kind the controllers read."""
        leases = (await engine.client.list(Lease, LEASE_NAMESPACE)).items
        return cls(tuple(await engine.objects(Pod)),
                   tuple(await engine.objects(ReplicationController)),
                   tuple(await engine.objects(Service)),
                   tuple(await engine.objects(Endpoints)),
                   tuple(await engine.objects(Node)), tuple(leases))


def fresh_decisions(engine: Engine, fresh: Fresh, *, node_lifecycle: bool = True
                    ) -> dict[str, list[Any]]:
    """What a freshly started controller manager and scheduler would do now, per
    controller and object (``replication/ns/name``, ``scheduler/ns/pod``...)."""
    now = engine.clock.now()
    manager = engine.manager
    assert manager is not None
    settings = manager.settings
    out: dict[str, list[Any]] = {}
    for rc in fresh.rcs:
        pods = tuple(p for p in fresh.pods if p.metadata.namespace == rc.metadata.namespace)
        out[f"replication/{replication.rc_key(rc)}"] = manager.reconcilers.replication(
            replication.ReplicationView(rc, pods, None), now, settings.replication)
    for key, view in _endpoint_views(fresh):
        out[f"endpoints/{key}"] = ep_controller.reconcile(view, now)
    if node_lifecycle:
        out["nodelifecycle"] = nodelifecycle.reconcile(node_view(fresh, None), now,
                                                       settings.node_lifecycle)
    out["gc"] = gc.reconcile(_gc_view(fresh), now, settings.gc)
    snapshot = sched.ClusterSnapshot.build(fresh.nodes, fresh.pods)
    for pod in fresh.pods:
        decision = sched.decide(sched.SchedulingView(pod, snapshot))
        if decision.outcome == "bind":
            out[f"scheduler/{object_key(pod)}"] = [decision.node]
    return {k: v for k, v in out.items() if v}


def _endpoint_views(fresh: Fresh) -> list[tuple[str, ep_controller.EndpointsView]]:
    services = {object_key(s): s for s in fresh.services}
    current = {object_key(e): e for e in fresh.endpoints}
    views = []
    for key in sorted(set(services) | set(current)):
        namespace, _, name = key.partition("/")
        pods = tuple(p for p in fresh.pods if p.metadata.namespace == namespace)
        views.append((key, ep_controller.EndpointsView(namespace, name, services.get(key), pods,
                                                   current.get(key))))
    return views


def node_view(fresh: Fresh, limiter: float | None) -> nodelifecycle.NodeLifecycleView:
    return nodelifecycle.NodeLifecycleView(
        fresh.nodes, {lease.metadata.name: lease for lease in fresh.leases},
        tuple(p for p in fresh.pods if p.spec.node_name), limiter)


def _gc_view(fresh: Fresh) -> gc.GCView:
    return gc.GCView((*fresh.pods, *fresh.rcs), frozenset(n.metadata.name for n in fresh.nodes))


def queue_busy(queue: WorkQueue) -> bool:
    """Something is queued, in progress, re-queued or waiting for a delay."""
    # The work queue keeps no public "idle" flag; its fields are read, never written.
    return bool(queue._queue or queue._processing or queue._dirty or queue._waiters)


def _owned_by(pod: Pod, rc: ReplicationController) -> bool:
    ref = controller_of(pod)
    return ref is not None and ref.uid == rc.metadata.uid


def _addresses(subsets: Iterable[Any]) -> set[tuple[str, str, bool]]:
    out = set()
    for s in subsets:
        for a in s.addresses:
            out.add((a.ip, a.target_ref.name if a.target_ref else "", True))
        for a in s.not_ready_addresses:
            out.add((a.ip, a.target_ref.name if a.target_ref else "", False))
    return out


def matching(svc: Service, pods: Iterable[Pod]) -> list[Pod]:
    """Pods of the Service's namespace its selector matches."""
    return [p for p in pods if p.metadata.namespace == svc.metadata.namespace
            and svc.spec.selector and selector_matches(svc.spec.selector, p.metadata.labels)]


__all__ = ["T0", "Change", "Channel", "Engine", "EngineConfig", "EngineError",
           "EngineManager", "Fresh", "History", "Settled", "fresh_decisions", "matching",
           "node_view", "queue_busy"]
