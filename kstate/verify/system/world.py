"""The abstract cluster the model checker explores: store, watch caches, nodes, time.

Where it sits: ``kstate.verify.system``. ``SystemModel`` (model.py) moves a ``World``
with actions; this module is the World value and the *abstract API*: what a write does
to the store, who sees it and when. What a write does is not written here: every rule
is the api server's own function in ``kstate.api.writes`` (create admission, update
merge, lifecycle check, finalizers, the delete decision, bind, evict), and a refusal is
the engine's own error, translated into the command outcome the engine's executor would
report (an illegal lifecycle move is also remembered as a violation).
``tests/verify/test_differential.py`` runs random requests through both and compares;
``tests/verify/test_one_definition.py`` keeps this module from growing its own copy.

Abstractions, each chosen to keep states few without hiding a bug class:

* **resourceVersion is content-addressed** (a hash of the object without it). A
  compare-and-swap succeeds exactly when the writer read the current content, and two
  histories that end in the same objects are the same state.
* **Watch caches lag.** Every write queues an event for each watcher; a ``Deliver``
  action applies the oldest event of one (watcher, kind) queue, so caches may be stale
  and kinds may arrive out of order — but each kind in order, as Kubernetes' watch
  guarantees. A queue longer than the scenario's ``watch_lag`` is caught up inside the
  write (bounded staleness).
* **Names from generateName** are ``<prefix><n>`` with a global counter (the engine draws
  five random letters), and a created object's uid is ``uid-<name>``.
* Events (``Record``) are not stored: they change nothing a controller reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs

from kstate.api import writes
from kstate.api.frozen import EMPTY, FrozenDict
from kstate.api.lifecycle import object_name
from kstate.api.meta import DeleteOptions, KubeObject, ObjectReference, Preconditions
from kstate.api.objects import Lease, Namespace, Node, Pod
from kstate.api.registry import REGISTRY
from kstate.control.executor import outcome_of
from kstate.control.expectations import Expectation, Observation
from kstate.errors import IllegalTransition, KeyExists, KstateError, Unavailable
from kstate.node.simulated import SimulatedNode
from kstate.verify.system.memo import Memo

Key = str  # "Kind/namespace/name" ("Kind//name" when cluster-scoped)

#: Kinds each watcher follows (the informers of that component).
WATCHES: dict[str, tuple[str, ...]] = {
    "cm": ("Pod", "ReplicationController", "Service", "Endpoints", "Node", "Lease",
           "Namespace"),
    "sched": ("Pod", "Node"),
    "kubelet": ("Pod",),
}


def key(kind: str, namespace: str, name: str) -> Key:
    return f"{kind}/{namespace}/{name}"


#: present in the store exactly when the scenario models namespaces
_DEFAULT_NAMESPACE = key("Namespace", "", "default")


def key_of(obj: KubeObject) -> Key:
    return key(type(obj).__name__, obj.metadata.namespace, obj.metadata.name)


def kind_of(k: Key) -> str:
    return k.split("/", 1)[0]


def content_version(obj: KubeObject) -> str:
    """The content-addressed resourceVersion of ``obj``."""
    bare = attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, resource_version=""))
    return format(hash(bare) & 0xFFFF_FFFF_FFFF, "x")


def stamped(obj: KubeObject) -> KubeObject:
    return attrs.evolve(obj, metadata=attrs.evolve(obj.metadata,
                                                   resource_version=content_version(obj)))


Change = tuple[Key, KubeObject | None]  # a watch event: the new object, or None (deleted)


def in_key_order(objects: Mapping[Key, KubeObject], kind: str) -> list[KubeObject]:
    """The objects of ``kind`` by key: a FrozenDict compares without order but iterates
    in insertion order, and what a component lists reaches its decisions."""
    prefix = kind + "/"
    return [o for _, o in sorted((k, o) for k, o in objects.items() if k.startswith(prefix))]


@attrs.frozen(cache_hash=True)
class Watcher:
    """A component's informer cache and the events not yet delivered to it, per kind."""

    cache: FrozenDict[Key, KubeObject] = EMPTY
    pending: FrozenDict[str, tuple[Change, ...]] = EMPTY

    def objects(self, kind: str) -> list[KubeObject]:
        """The cached objects of ``kind``, in key order (never the cache's insertion
        order: equal states must list alike, docs/verify.md)."""
        return in_key_order(self.cache, kind)

    def backlog(self) -> int:
        return sum(len(q) for q in self.pending.values())


@attrs.frozen(cache_hash=True)
class ControllerManager:
    """The controller manager: one shared cache (as kube-controller-manager shares its
    informers) and its in-memory state — lost on restart."""

    watcher: Watcher = Watcher()
    expectations: FrozenDict[str, Expectation] = EMPTY
    memory: FrozenDict[str, float] = EMPTY


@attrs.frozen(cache_hash=True)
class Kubelet:
    """One node's agent: reachable or not, its cache of pods, its memory (back-off,
    start errors, readiness results) — all lost when the agent restarts."""

    up: bool = True  # False while partitioned from the control plane or rebooting
    watcher: Watcher = Watcher()
    backoff: FrozenDict[str, Any] = EMPTY  # "uid/container" -> podsync.BackOff
    start_errors: FrozenDict[str, FrozenDict[str, str]] = EMPTY  # uid -> name -> reason
    #: container instances (runtime ids) whose readiness probe passes; as in the
    #: engine's ProbeManager a result belongs to one instance and starts as failing
    probes_passing: frozenset[str] = frozenset()


@attrs.frozen(cache_hash=True)
class Flags:
    """History facts the properties read (auxiliary variables, as in TLA+)."""

    overcreated: bool = False  # an RC's create left more active pods than replicas
    illegal: str = ""  # the first write refused as an illegal lifecycle move
    rebound: bool = False  # a bound pod's node changed
    restarted_finished: bool = False  # a container started for a finished pod
    evicted_in_full_disruption: bool = False  # a pod deleted while every node was down


@attrs.frozen(cache_hash=True)
class World:
    store: FrozenDict[Key, KubeObject]
    now: float
    cm: ControllerManager = ControllerManager()
    sched: Watcher = Watcher()
    kubelets: FrozenDict[str, Kubelet] = EMPTY
    runtimes: FrozenDict[str, SimulatedNode] = EMPTY
    budget: FrozenDict[str, int] = EMPTY  # faults left, by fault name
    script: tuple[Any, ...] = ()  # user steps still to come, in order
    seq: int = 0  # generateName counter
    flags: Flags = Flags()
    #: False during an API server outage: every request fails as ``unavailable``
    api_available: bool = True
    #: Objects with a chosen name removed so far, by key. A re-created one is a new
    #: incarnation with its own uid, as in Kubernetes: with content-addressed
    #: resourceVersions it would otherwise look exactly like the one a stale cache saw.
    #: (Generated names never come back: ``seq`` only grows.)
    incarnations: FrozenDict[Key, int] = EMPTY

    # ------------------------------------------------------------------ reads

    def get(self, k: Key) -> KubeObject | None:
        return self.store.get(k)

    def objects(self, kind: str) -> list[KubeObject]:
        """The stored objects of ``kind``, in key order."""
        return in_key_order(self.store, kind)

    def pods(self) -> list[Pod]:
        return [o for o in self.objects("Pod") if isinstance(o, Pod)]

    def nodes(self) -> list[Node]:
        return [o for o in self.objects("Node") if isinstance(o, Node)]

    def with_flag(self, **changes: Any) -> World:
        current = self.flags
        # Keep the first illegal write: later ones would only churn the state.
        if "illegal" in changes and current.illegal:
            del changes["illegal"]
        return replace(self, flags=replace(current, **changes))


T = TypeVar("T", Watcher, ControllerManager, Kubelet, Flags, World)
R = TypeVar("R")


def _replacer(cls: type) -> Callable[[Any, dict[str, Any]], Any]:
    """A function ``(value, changes) -> copy of value with changes`` for one of the
    model's own frozen classes, written out field by field.

    Why generated: the checker builds every successor with a handful of these, and an
    attrs frozen class's ``__init__`` sets each field through ``object.__setattr__``;
    setting the slots directly, in straight-line code, takes about two thirds of the time
    (a loop over the fields takes as long as ``__init__``). Sound only for classes
    without converters, validators or ``__attrs_post_init__`` (checked here), and it
    clears attrs' cached hash as ``__init__`` does."""
    fields = attrs.fields(cls)
    assert not any(f.converter or f.validator or not f.init for f in fields), cls
    assert not hasattr(cls, "__attrs_post_init__"), cls
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls,
                             "set_hash": cls.__dict__["_attrs_cached_hash"].__set__}
    lines = ["def replaced(value, changes):", "    get = changes.get", "    out = new(cls)"]
    for f in fields:
        scope[f"set_{f.name}"] = cls.__dict__[f.name].__set__  # the slot's own setter
        lines.append(f"    set_{f.name}(out, get({f.name!r}, value.{f.name}))")
    lines += ["    set_hash(out, None)", "    return out"]
    # the source is built above from the class's own field names, nothing else
    exec("\n".join(lines), scope)
    return cast(Callable[[Any, dict[str, Any]], Any], scope["replaced"])


_REPLACERS = {cls: _replacer(cls) for cls in (Watcher, ControllerManager, Kubelet, Flags,
                                              World)}


def replace(value: T, **changes: Any) -> T:
    """``attrs.evolve`` for the model's own values (the World and its parts), without
    evolve's per-call introspection of the fields or ``__init__``'s per-field
    ``object.__setattr__`` (``_replacer``). API objects keep ``attrs.evolve`` (a
    ``KeyError`` here says the value is not one of the model's own; a misspelt field
    name is an ``AssertionError``)."""
    replaced = _REPLACERS[type(value)]
    assert changes.keys() <= _FIELD_NAMES[type(value)], changes.keys()
    return cast(T, replaced(value, changes))


_FIELD_NAMES = {cls: frozenset(f.name for f in attrs.fields(cls)) for cls in _REPLACERS}


# ----------------------------------------------------------------------- watchers


Delivered = tuple[Change, "KubeObject | None"]  # an event and the cached object it replaced


def _enqueue(w: Watcher, change: Change, limit: int, memo: Memo | None = None
             ) -> tuple[Watcher, list[Delivered]]:
    """Queue ``change``; if the queue overflows ``limit``, deliver its head now.

    With ``memo``, the watcher's new parts are looked up, not rebuilt: a lagging cache
    catches up to a store the search has met before (the one before this write), and
    the queues recur too, so a hit hands back that very FrozenDict, hash cached. The
    controller manager's cache then shares its values with the stores, and the
    checker's fingerprint and every memo lookup keyed on the cache (its rounds) hash
    and compare it by identity."""
    kind = kind_of(change[0])
    queue = (*w.pending.get(kind, ()), change)
    delivered: list[Delivered] = []
    cache = w.cache
    while len(queue) > limit:
        head, queue = queue[0], queue[1:]
        delivered.append((head, cache.get(head[0])))
        cache = _by(memo, _apply_change, cache, head)
    return Watcher(cache, _by(memo, _with_queue, w.pending, kind, queue)), delivered


def _by(memo: Memo | None, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)``, looked up in ``memo`` when there is one."""
    return memo(fn, *args) if memo is not None else fn(*args)


def _apply_change(
    cache: FrozenDict[Key, KubeObject], change: Change
) -> FrozenDict[Key, KubeObject]:
    k, obj = change
    return cache.set(k, obj) if obj is not None else cache.without(k)


def _with_queue(pending: FrozenDict[str, tuple[Change, ...]], kind: str,
                queue: tuple[Change, ...]) -> FrozenDict[str, tuple[Change, ...]]:
    """The pending events with ``kind``'s queue replaced (dropped when empty)."""
    return pending.merge({kind: queue}) if queue else pending.without(kind)


def deliver(w: Watcher, kind: str, memo: Memo | None = None) -> tuple[Watcher, Delivered]:
    """Apply the oldest pending event of ``kind`` to the cache (``memo``: as
    ``_enqueue``)."""
    queue = w.pending[kind]
    head = queue[0]
    return (Watcher(_by(memo, _apply_change, w.cache, head),
                    _by(memo, _with_queue, w.pending, kind, queue[1:])),
            (head, w.cache.get(head[0])))


def delivered_to(w: Watcher, kind: str) -> Watcher:
    """The watcher after ``deliver``."""
    return deliver(w, kind)[0]


def _cm_takes(cm: ControllerManager, change: Change, limit: int, memo: Memo
              ) -> ControllerManager:
    """The controller manager after a write's event reached its watch queue (and, past
    the lag, its cache and the replication controller's watch handler)."""
    watcher, delivered = _enqueue(cm.watcher, change, limit, memo)
    cm = replace(cm, watcher=watcher)
    return observe(cm, delivered, memo) if delivered else cm


def _takes(w: Watcher, change: Change, limit: int) -> Watcher:
    return _enqueue(w, change, limit)[0]


def _kubelets_take(kubelets: FrozenDict[str, Kubelet], change: Change,
                   old: KubeObject | None, limit: int) -> FrozenDict[str, Kubelet]:
    """A kubelet watches only the pods bound to it (field selector
    spec.nodeName=<node>): a pod event reaches it when the pod is, or was, its own."""
    updated = {name: replace(kl, watcher=_takes(kl.watcher, change, limit))
               for name, kl in kubelets.items()
               if kl.up and (_on(change[1], name) or _on(old, name)
                             or change[0] in kl.watcher.cache)}
    return kubelets.merge(updated)


def cm_delivers(cm: ControllerManager, kind: str, memo: Memo) -> ControllerManager:
    """``Deliver(cm, kind)``: the oldest event of ``kind`` reaches the controller
    manager's cache and the replication controller's watch handler."""
    watcher, event = deliver(cm.watcher, kind, memo)
    return observe(replace(cm, watcher=watcher), [event], memo)


def caught_up(store: Mapping[Key, KubeObject], kinds: Iterable[str]) -> Watcher:
    """A fresh list: the cache equals the store for ``kinds``, nothing pending."""
    wanted = tuple(kinds)
    return Watcher(FrozenDict({k: o for k, o in store.items() if kind_of(k) in wanted}))


def replication_observations(change: Change, before: KubeObject | None,
                             rcs: Iterable[KubeObject]) -> list[Observation]:
    """What a pod event tells the replication controller's expectations."""
    from kstate.control.replication import pod_event

    k, obj = change
    if kind_of(k) != "Pod":
        return []
    old = before if isinstance(before, Pod) else None
    new = obj if isinstance(obj, Pod) else None
    if old is None and new is None:
        return []
    observed, _ = pod_event(old, new, [r for r in rcs])  # type: ignore[misc]
    return observed


# ----------------------------------------------------------------------- api


@attrs.frozen
class Outcome:
    world: World
    result: str  # "ok", "conflict", "not_found", "exists", "invalid", "unavailable"
    obj: KubeObject | None = None


Verb = TypeVar("Verb", bound=Callable[..., Outcome])


def _answering(verb: Verb) -> Verb:
    """A request to a server that may be down: during an outage
    (``World.api_available`` False) every verb gets the outage's answer."""

    @functools.wraps(verb)
    def run(self: AbstractApi, world: World, *args: Any, **kwargs: Any) -> Outcome:
        if not world.api_available:
            return self.outage(world)
        return verb(self, world, *args, **kwargs)

    return run  # type: ignore[return-value]


def _binding_target(namespace: str, name: str, node: str, uid: str) -> tuple[str, str, str]:
    """The api server's reading of the Binding the scheduler posts (validated)."""
    return writes.binding_request(namespace, writes.binding_of(namespace, name, node, uid))


def _check_delete_request(kind: str, name: str, options: DeleteOptions) -> None:
    writes.check_delete_request(REGISTRY.for_kind(kind), name, options)


class AbstractApi:
    """The api server's write rules (``kstate.api.writes``) over the World's store, then
    fan-out to the watchers.

    Every decision — defaults, validation, the update merge, the lifecycle check,
    finalizers, the delete decision with grace and propagation, bind, evict — is the
    engine's own function; a refusal is the engine's own error, translated into a
    command outcome by the executor's mapping (``outcome_of``). What this class adds is
    plumbing only: content-addressed resourceVersions, ``generateName`` from a counter
    (uid ``uid-<name>``), an atomic store (no CAS retries), and the watch fan-out. It
    drops what the model does not have: namespaces (their admission and sweep), Service
    address allocation (the scenario's Services carry theirs), dry runs. Namespaces are
    modelled when the scenario has them: the ``default`` namespace is then in the store
    (as ``ApiCore.start`` puts it there) and every create passes the namespace
    admission (``writes.check_namespace_open``).
    """

    def __init__(self, watch_lag: int, scheduler_lag: int = 0, kubelet_lag: int = 0,
                 memo: Memo | None = None) -> None:
        self.watch_lag = watch_lag  # the controller manager's caches
        self.scheduler_lag = scheduler_lag
        self.kubelet_lag = kubelet_lag
        #: The write rules' decisions (validation included) and the watch fan-out, by
        #: their arguments: the same objects recur in many states, and a hit hands back
        #: the value built the first time, whose hash is already cached (memo.py). The
        #: model shares its own memo here: one bounded table per process.
        self.memo = memo if memo is not None else Memo()

    # -------------------------------------------------------------- plumbing

    def _commit(self, world: World, k: Key, obj: KubeObject | None) -> World:
        """The store after the write, and its event queued for every watcher."""
        memo, change = self.memo, (k, obj)
        kind = kind_of(k)
        cm, sched, kubelets = world.cm, world.sched, world.kubelets
        if kind in WATCHES["cm"]:
            # not memoised whole: the controller manager's cache follows the store closely,
            # so nearly every state has its own
            cm = _cm_takes(cm, change, self.watch_lag, memo)
        if kind in WATCHES["sched"]:
            sched = memo(_takes, sched, change, self.scheduler_lag)
        if kind in WATCHES["kubelet"]:
            kubelets = memo(_kubelets_take, kubelets, change, world.store.get(k),
                            self.kubelet_lag)
        return replace(world, store=memo(_apply_change, world.store, change), cm=cm,
                       sched=sched, kubelets=kubelets)

    def _store(self, world: World, k: Key, current: KubeObject | None,
               new: KubeObject | None) -> Outcome:
        """Write ``new`` (``None``: remove) at ``k``; an unchanged object writes nothing.
        A stored pod moving from one node to another is remembered for ``bound_once``."""
        if new is None:
            if current is not None and not current.metadata.generate_name:
                world = replace(world, incarnations=world.incarnations.set(
                    k, world.incarnations.get(k, 0) + 1))
            return Outcome(self._commit(world, k, None), "ok")
        new = self.memo(stamped, new)
        # Content-addressed versions: different versions are different objects, so the
        # deep comparison runs only when the versions agree.
        if new is current or (current is not None and new.metadata.resource_version
                              == current.metadata.resource_version and new == current):
            return Outcome(world, "ok", current)
        if _moved(current, new):
            world = world.with_flag(rebound=True)
        return Outcome(self._commit(world, k, new), "ok", new)

    @staticmethod
    def available(world: World) -> bool:
        """Does the API server answer? (An outage is a fault: see ``World.api_available``.)"""
        return world.api_available

    def outage(self, world: World) -> Outcome:
        """A request during an outage: the error a client gets when the server does not
        answer (503), as the command outcome the executor reports."""
        return self._refused(world, Unavailable("the API server is not answering"))

    @staticmethod
    def _refused(world: World, err: KstateError) -> Outcome:
        """The engine's error as the command outcome the executor would report; an
        illegal lifecycle move is remembered for ``legal_transitions``."""
        if isinstance(err, IllegalTransition):
            world = world.with_flag(illegal=str(err))
        return Outcome(world, outcome_of(err))

    # -------------------------------------------------------------- verbs

    @_answering
    def create(self, world: World, obj: KubeObject) -> Outcome:
        info = writes.info_of(obj)
        try:
            obj = writes.in_namespace(info, obj, "")
            seq = world.seq
            while True:
                suffix = str(seq)
                name = writes.with_generated_name(obj, suffix).metadata.name
                # A generated name that is taken is drawn again, as ApiCore.create does;
                # only a name the client chose is AlreadyExists.
                if obj.metadata.name or key(type(obj).__name__, obj.metadata.namespace,
                                            name) not in world.store:
                    break
                seq += 1
            born = world.incarnations.get(key(type(obj).__name__, obj.metadata.namespace,
                                              name), 0)
            uid = f"uid-{name}-{born}" if born else f"uid-{name}"
            created = self.memo(writes.admit_create, obj, world.now, uid)
            created = writes.with_generated_name(created, suffix)
            k = key_of(created)
            namespace = created.metadata.namespace
            if namespace and _DEFAULT_NAMESPACE in world.store:
                stored = world.get(key("Namespace", "", namespace))
                writes.check_namespace_open(
                    namespace, stored if isinstance(stored, Namespace) else None)
            if k in world.store:  # the store's create: the key is taken
                raise KeyExists(f'{info.plural} "{name}" already exists', key=name)
        except KstateError as err:
            return self._refused(world, err)
        if not obj.metadata.name:
            world = replace(world, seq=seq + 1)
        return self._store(world, k, None, created)

    @_answering
    def update(self, world: World, obj: KubeObject, subresource: str = "") -> Outcome:
        """A replace (``subresource="status"``: only the status); the object's
        resourceVersion, when set, is the precondition."""
        info = writes.info_of(obj)
        obj = writes.in_namespace(info, obj, "")
        k = key_of(obj)
        current = world.get(k)
        if subresource != "status" and _moved(current, obj):
            world = world.with_flag(rebound=True)  # an attempt, whatever the server says
        try:
            writes.check_subresource(info, subresource, ("", "status", "finalize"))
            if current is None and writes.creates_on_update(
                    info, subresource, obj.metadata.resource_version):
                return self.create(world, obj)
            current = writes.existing(info, obj.metadata.name, current)
            writes.check_resource_version(info, current, obj.metadata.resource_version)
            plan = self.memo(writes.plan_update, current, obj, world.now, subresource)
        except KstateError as err:
            return self._refused(world, err)
        if not plan.changed:
            return Outcome(world, "ok", current)
        return self._store(world, k, current, None if plan.remove else plan.obj)

    def delete(self, world: World, kind: str, namespace: str, name: str, uid: str = "",
               grace: int | None = None, propagation: str | None = None, *,
               resource_version: str = "") -> Outcome:
        """A delete with the given grace period and propagation policy (``None``: the
        server's defaults), guarded by ``uid`` / ``resource_version`` when given."""
        preconditions = Preconditions(uid=uid, resource_version=resource_version) \
            if uid or resource_version else None
        return self._delete(world, kind, namespace, name, DeleteOptions(
            grace_period_seconds=grace, propagation_policy=propagation or "",
            preconditions=preconditions))

    def evict(self, world: World, namespace: str, name: str, uid: str = "",
              grace: int | None = None) -> Outcome:
        """``pods/<name>/eviction`` (``uid``: a precondition, when given)."""
        eviction = writes.eviction_of(namespace, name, grace, uid)
        return self._delete(world, "Pod", namespace, name, writes.eviction_options(eviction))

    @_answering
    def _delete(self, world: World, kind: str, namespace: str, name: str,
                options: DeleteOptions) -> Outcome:
        info = REGISTRY.for_kind(kind)
        k = key(kind, namespace if info.namespaced else "", name)
        try:
            self.memo(_check_delete_request, kind, name, options)
            current = writes.existing(info, name, world.get(k))
            writes.check_preconditions(current, options.preconditions)
            plan = self.memo(writes.plan_delete, current, options, world.now)
        except KstateError as err:
            return self._refused(world, err)
        if not plan.remove and plan.updated is None:
            return Outcome(world, "ok", current)
        return self._store(world, k, current, plan.updated)

    @_answering
    def bind(self, world: World, namespace: str, name: str, uid: str, node: str) -> Outcome:
        """``pods/<name>/binding`` to ``node``, as the scheduler posts it."""
        k = key("Pod", namespace, name)
        info = writes.info_of(Pod)
        try:
            pod_name, target, want_uid = self.memo(_binding_target, namespace, name, node,
                                                   uid)
            pod = writes.existing(info, pod_name, world.get(k))
            assert isinstance(pod, Pod)
            proposed = self.memo(writes.bind, pod, target, want_uid, world.now)
            plan = self.memo(writes.plan_update, pod, proposed, world.now, "binding")
        except KstateError as err:
            return self._refused(world, err)
        return self._store(world, k, pod, plan.obj)

    def exists(self, world: World, ref: ObjectReference) -> bool:
        """The live read behind ``DeleteIfGone``: is the referenced object there?"""
        k = key(ref.kind, ref.namespace if ref.kind != "Node" else "", ref.name)
        obj = world.get(k)
        return obj is not None and (not ref.uid or obj.metadata.uid == ref.uid)

    def put(self, world: World, obj: KubeObject) -> World:
        """An unconditional write by a component that owns the object (leases)."""
        return self._commit(world, key_of(obj), self.memo(stamped, obj))


def _on(obj: KubeObject | None, node: str) -> bool:
    return isinstance(obj, Pod) and obj.spec.node_name == node


def _moved(before: KubeObject | None, after: KubeObject) -> bool:
    """A bound pod's node changes (``bound_once``'s history fact)."""
    return isinstance(before, Pod) and isinstance(after, Pod) and \
        bool(before.spec.node_name) and after.spec.node_name != before.spec.node_name


def observe(cm: ControllerManager, delivered: Iterable[Delivered],
            memo: Memo | None = None) -> ControllerManager:
    """Run the replication controller's watch handler on events its cache just took in
    (with ``memo``, its results are remembered by expectations, events and RCs: they
    recur, and a hit costs no scan of the cache either)."""
    if not cm.expectations:
        return cm  # only existing records move
    pod_events = tuple(d for d in delivered if d[0][0].startswith("Pod/"))
    if not pod_events:
        return cm  # only pod events move expectations
    cache = cm.watcher.cache
    rcs = _by(memo, _objects_of, cache, "ReplicationController")
    expectations = _by(memo, _observed, cm.expectations, pod_events, rcs)
    return cm if expectations is None else replace(cm, expectations=expectations)


def _objects_of(cache: FrozenDict[Key, KubeObject], kind: str) -> tuple[KubeObject, ...]:
    prefix = kind + "/"
    return tuple(o for k, o in cache.items() if k.startswith(prefix))


def _observed(expectations: FrozenDict[str, Expectation], events: tuple[Delivered, ...],
              rcs: tuple[KubeObject, ...]) -> FrozenDict[str, Expectation] | None:
    """The expectations after the watch handler saw ``events`` (None: unchanged)."""
    changed: dict[str, Expectation] = {}
    for change, before in events:
        for seen in replication_observations(change, before, rcs):
            record = changed.get(seen.key, expectations.get(seen.key))
            if record is not None:
                changed[seen.key] = record.observe(seen.what, seen.pod)
    return expectations.merge(changed) if changed else None


def lease_of(world: World, node: str) -> Lease | None:
    obj = world.get(key("Lease", "kube-node-lease", node))
    return obj if isinstance(obj, Lease) else None


__all__ = ["WATCHES", "AbstractApi", "ControllerManager", "Flags", "Kubelet", "Outcome",
           "Watcher", "World", "caught_up", "cm_delivers", "content_version", "deliver",
           "delivered_to", "key", "key_of", "kind_of", "lease_of", "object_name", "observe",
           "replace"]
