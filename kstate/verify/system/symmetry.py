"""Symmetry over nodes and pods: clusters that differ only by names are one state.

Where it sits: ``kstate.verify.system``; ``Scenario.model`` installs ``ClusterSymmetry``
as the model's ``canonical``. Identical nodes are interchangeable, and so are the pods
of one RC (their generated suffixes are arbitrary) — renaming them maps every behaviour
to a behaviour — so the checker stores one World per renaming class.

Renaming is structural: every string that *is* a name (``spec.nodeName``, a Node's or
Lease's name, a pod's name and uid, a store key segment, a map key) is replaced, and
every object is re-stamped with its content-addressed resourceVersion, so caches and
store stay consistent. Properties never name a node, so they cannot tell renamed states
apart.

Cost: ``canonical`` runs on every state the search generates, so it has to be cheap.
It works out every candidate renaming from signatures first (no World is built for
that), renames the World once per candidate, and a renaming renames each distinct value
once: neighbouring states share most of their objects, and a renamed value keeps the
very objects that did not change (so their cached hashes are reused).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any, cast

import attrs

from kstate.api.frozen import FrozenDict
from kstate.api.helpers import get_condition
from kstate.api.lifecycle import pod_state
from kstate.api.meta import KubeObject
from kstate.api.objects import EndpointAddress, Endpoints, Node, Pod
from kstate.control.endpoints import address_order
from kstate.node.simulated import SimulatedNode
from kstate.runtime.base import ContainerState
from kstate.verify.checker.symmetry import least, sorting_renamings
from kstate.verify.system.world import Watcher, World, stamped

# ----------------------------------------------------------------------- renaming


def rename(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with every name replaced according to ``names`` (the parts of
    ``value`` that mention none of them are returned as they are, not copied)."""
    return _renamed(value, _moves(names))


def _moves(names: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in names.items() if k != v))


def _renamed(value: Any, moves: tuple[tuple[str, str], ...]) -> Any:
    if not moves:
        return value
    renaming = _RENAMINGS.get(moves)
    if renaming is None:
        if _Renaming.cached > _CACHE_LIMIT:
            _RENAMINGS.clear()
            _RENAMED.clear()
            _Renaming.cached = 0
        renaming = _RENAMINGS[moves] = _Renaming(dict(moves))
    return renaming.whole(value) if isinstance(value, World) else renaming(value)


#: One ``_Renaming`` per renaming in use, each with what it renamed so far.
_RENAMINGS: dict[tuple[tuple[str, str], ...], _Renaming] = {}
#: Every value a renaming built, once: two renamings that build equal values (of a state
#: that some renaming maps to itself) hand back the same object, so comparing the
#: candidates they give takes one look instead of a walk through two equal Worlds.
_RENAMED: dict[Any, Any] = {}
#: Representatives a ClusterSymmetry keeps before it drops them (memory bound).
_KNOWN_LIMIT = 200_000
#: Renamed values kept over all renamings before they are dropped (memory bound).
_CACHE_LIMIT = 1_000_000
_ATOMS = (int, float, bool, type(None))
#: Facts about single values kept for the signatures, per kind of fact.
_FACTS = 100_000


class _Renaming:
    """One renaming, applied to values; each distinct value is renamed once (states
    share objects: the caches hold the store's, neighbouring states most of theirs)."""

    cached = 0  # entries remembered by every renaming together

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        #: by identity first (the model hands the same objects to many states, and an
        #: identity look-up skips hashing and comparing them), then by equality
        self.seen: dict[int, tuple[Any, Any]] = {}
        self.done: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        cls = type(value)
        if cls is str:  # by equality: a string's hash is cached, and keys are rebuilt
            done = self.done.get(value)
            if done is None:
                done = self.done[value] = self._string(value)
                _Renaming.cached += 1
            return done
        if cls in _ATOMS:
            return value
        seen = self.seen.get(id(value))
        if seen is not None and seen[0] is value:
            return seen[1]
        if cls in _CONTAINERS or cls in _STRUCTURED or _structured(cls):
            done = self.done.get(value, _MISSING)
            if done is _MISSING:
                done = self._renamed(value)
                if done is not value:
                    done = _RENAMED.setdefault(done, done)
                self.done[value] = done
                _Renaming.cached += 1
        else:
            done = value
        # keeps ``value`` alive, so that its id is not reused while remembered
        self.seen[id(value)] = (value, done)
        _Renaming.cached += 1
        return done

    def whole(self, world: Any) -> Any:
        """``world`` renamed: as a call, but the result is not kept for sharing (a
        World is not part of another)."""
        done = self.done.get(world, _MISSING)
        if done is _MISSING:
            done = self.done[world] = self._renamed(world)
            _Renaming.cached += 1
        return done

    def _renamed(self, value: Any) -> Any:
        """``value`` renamed: the same object when nothing in it changes."""
        if isinstance(value, str):
            return self._string(value)
        if isinstance(value, tuple):
            items = tuple(map(self, value))
            return value if _same(items, value) else _sorted_like(value, items)
        if isinstance(value, FrozenDict):
            # the hot loop (stores and caches): a value met before is looked up here
            seen, done, pairs, changed = self.seen.get, self.done.get, [], False
            for k, v in value.items():
                nk = done(k) if type(k) is str else None
                if nk is None:
                    nk = self(k)
                hit = seen(id(v))
                nv = hit[1] if hit is not None and hit[0] is v else self(v)
                changed = changed or nk is not k or nv is not v
                pairs.append((nk, nv))
            return FrozenDict(pairs) if changed else value
        if isinstance(value, frozenset):
            members = [self(v) for v in value]
            return value if _same(members, value) else frozenset(members)
        layout = _layout(cast(Hashable, type(value)))
        old = layout.values(value)
        new = [self(v) if renames else v for v, renames in zip(old, layout.renamed,
                                                               strict=True)]
        if _same(new, old):
            return value
        renamed = layout.build(new)
        return stamped(renamed) if isinstance(renamed, KubeObject) else renamed

    def _string(self, value: str) -> str:
        if " " in value:  # a message: "... container=app pod=web-0" names its pod
            new = _WORD.sub(lambda m: _rename_word(m.group(), self.table), value)
            return value if new == value else new
        if "/" not in value:
            return _rename_word(value, self.table)
        new = "/".join(_rename_word(p, self.table) for p in value.split("/"))
        return value if new == value else new


_MISSING = object()
_CONTAINERS = (tuple, FrozenDict, frozenset)
_STRUCTURED: set[type] = set()  # attrs classes met so far


def _structured(cls: type) -> bool:
    if attrs.has(cls):
        _STRUCTURED.add(cls)
        return True
    return False


def _same(new: Any, old: Any) -> bool:
    return all(a is b for a, b in zip(new, old, strict=True))


_WORD = re.compile(r"[^\s=/]+")


def _sorted_like(old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    """``new`` kept in the order the model keeps it: a runtime lists its sandboxes and
    containers by id (which holds the pod's uid), an Endpoints subset its addresses by
    IP then pod name, so after renaming pods the state the model itself would build is
    the re-sorted one."""
    if len(new) < 2:
        return new
    if isinstance(new[0], EndpointAddress):  # sorted by IP, then pod name
        return tuple(sorted(new, key=address_order))
    ids = [getattr(x, "id", None) for x in old]
    keys = [i for i in ids if isinstance(i, str)]
    if len(keys) != len(ids) or keys != sorted(keys):
        return new
    return tuple(sorted(new, key=lambda x: x.id))


def _rename_word(word: str, table: Mapping[str, str]) -> str:
    if word in table:
        return table[word]
    if word.startswith("uid-"):
        # The model's uids follow the name (``uid-<name>``, ``uid-<name>-<incarnation>``
        # for a re-created object): a renaming that missed them would give a node the
        # other node's uid — no reachable state, so renamed nodes would never merge.
        name = word[4:]
        if name in table:
            return f"uid-{table[name]}"
        base, _, born = name.rpartition("-")
        if born.isdigit() and base in table:
            return f"uid-{table[base]}-{born}"
    return word


@attrs.frozen
class _Layout:
    """How to take an attrs class's values apart and build one again, faster than
    ``attrs.evolve`` (which looks the fields up on every call)."""

    values: Callable[[Any], tuple[Any, ...]]  # every init field's value, in order
    renamed: tuple[bool, ...]  # which of them may hold a name
    build: Callable[[Sequence[Any]], Any]  # values, in that order -> a new instance


@cache
def _layout(cls: Hashable) -> _Layout:
    kind = cast(type, cls)
    init = [f for f in attrs.fields(kind) if f.init]
    fields = [f for f in init if not f.kw_only] + [f for f in init if f.kw_only]
    positional = sum(1 for f in fields if not f.kw_only)
    keywords = [f.alias for f in fields if f.kw_only]

    def build(values: Sequence[Any]) -> Any:
        return kind(*values[:positional], **dict(zip(keywords, values[positional:],
                                                     strict=True)))

    names = [f.name for f in fields]
    getter = operator.attrgetter(*names) if names else (lambda v: ())
    return _Layout(
        values=(lambda v: (getter(v),)) if len(names) == 1 else getter,
        # json_order (how the object was spelled) holds keys, never names
        renamed=tuple(f.name != "json_order" for f in fields),
        build=build)


# ----------------------------------------------------------------------- signatures
#
# What a node or a pod looks like without its name, from views of the World's parts
# (the store, each cache, each runtime). Every view is remembered by the part it views,
# and the renamings by the views they come from: parts recur across states far more
# than whole states do. The finer the signatures, the fewer the ties, and each tie
# multiplies the candidates.

#: A pod without names: (state, has a node, (container, restarts)..., created).
PodFacts = tuple[str, bool, tuple[tuple[str, int], ...], str]


@lru_cache(maxsize=_FACTS)
def _pod_facts(pod: Pod, now: float) -> PodFacts:
    return (pod_state(pod, now), bool(pod.spec.node_name),
            tuple(sorted((c.name, c.restart_count) for c in pod.status.container_statuses)),
            pod.metadata.creation_timestamp)


def _owner(obj: Any) -> str:
    """The RC owning ``obj`` if it is such a pod, else ``""``."""
    if isinstance(obj, Pod) and obj.metadata.owner_references:
        return obj.metadata.owner_references[0].name
    return ""


# Views are values (hashed once): parts that differ in what no signature reads give
# equal views, and the renamings are remembered by the views.


@attrs.frozen(cache_hash=True)
class _StoreView:
    #: name -> (RC, node, facts)
    pods: FrozenDict[str, tuple[str, str, PodFacts | tuple[()]]]
    nodes: FrozenDict[str, tuple[Any, ...]]  # name -> (Ready, unschedulable, taints)
    endpoints: FrozenDict[str, tuple[str, ...]]  # pod -> how the Endpoints list it


@attrs.frozen(cache_hash=True)
class _CacheView:
    #: pod name -> (its RC, how this cache and its pending events show it)
    pods: FrozenDict[str, tuple[str, Any]]


@attrs.frozen(cache_hash=True)
class _RuntimeView:
    counts: tuple[int, int]  # containers, running ones
    #: pod uid -> containers, running ones, attempts
    pods: FrozenDict[str, tuple[int, int, int]]


@lru_cache(maxsize=_FACTS)
def _store_view(store: FrozenDict[str, Any], now: float) -> _StoreView:
    pods: dict[str, tuple[str, str, PodFacts]] = {}
    nodes: dict[str, tuple[Any, ...]] = {}
    endpoints: dict[str, list[str]] = {}
    for obj in store.values():
        if rc := _owner(obj):
            pods[obj.metadata.name] = (rc, obj.spec.node_name, _pod_facts(obj, now))
        elif isinstance(obj, Node):
            ready = get_condition(obj.status.conditions, "Ready")
            nodes[obj.metadata.name] = (ready.status if ready is not None else "",
                                        obj.spec.unschedulable,
                                        tuple(sorted(t.key for t in obj.spec.taints)))
        elif isinstance(obj, Endpoints):
            for subset in obj.subsets:
                for listed, addresses in (("ready", subset.addresses),
                                          ("not ready", subset.not_ready_addresses)):
                    for a in addresses:
                        if a.target_ref is not None:
                            endpoints.setdefault(a.target_ref.name, []).append(listed)
    return _StoreView(FrozenDict(pods), FrozenDict(nodes),
                      FrozenDict({p: tuple(sorted(e)) for p, e in endpoints.items()}))


@lru_cache(maxsize=_FACTS)
def _cache_view(watcher: Watcher, now: float) -> _CacheView:
    pods: dict[str, tuple[str, Any]] = {}
    for obj in watcher.cache.values():
        if rc := _owner(obj):
            pods[obj.metadata.name] = (rc, (_pod_facts(cast(Pod, obj), now), 0))
    for queue in watcher.pending.values():
        for k, event in queue:
            if k.startswith("Pod/"):
                name = k.rsplit("/", 1)[1]
                rc, (cached, events) = pods.get(name, (_owner(event), ((), 0)))
                pods[name] = (rc or _owner(event), (cached, events + 1))
    return _CacheView(FrozenDict(pods))


@lru_cache(maxsize=_FACTS)
def _runtime_view(runtime: SimulatedNode) -> _RuntimeView:
    pods: dict[str, list[int]] = {}
    running = 0
    for c in runtime.containers:
        up = c.state is ContainerState.RUNNING
        running += up
        counts = pods.setdefault(c.pod_uid, [0, 0, 0])
        counts[0] += 1
        counts[1] += up
        counts[2] += c.attempt
    return _RuntimeView((len(runtime.containers), running),
                        FrozenDict({u: (c[0], c[1], c[2]) for u, c in pods.items()}))


def _pod_names(w: World) -> dict[str, set[str]]:
    """Pod names of each RC found anywhere in ``w`` (store, caches, pending events):
    a pod deleted from the store may live on in a lagging cache, and a renaming must
    rename it everywhere at once."""
    views = _views(w)
    return _names_by_rc(views[1], views[2], views[3], views[4])


def _names_by_rc(store: _StoreView, cm: _CacheView, sched: _CacheView,
                 kubelets: tuple[tuple[str, bool, _CacheView], ...]) -> dict[str, set[str]]:
    owners: dict[str, set[str]] = {}
    views: list[Mapping[str, tuple[Any, ...]]] = [
        store.pods, cm.pods, sched.pods, *(k[2].pods for k in kubelets)]
    for pods in views:
        for name, (rc, *_) in pods.items():
            if rc:
                owners.setdefault(rc, set()).add(name)
    return owners


Views = tuple[tuple[str, ...], _StoreView, _CacheView, _CacheView,
              tuple[tuple[str, bool, _CacheView], ...], tuple[tuple[str, _RuntimeView], ...]]


def _views(w: World, nodes: tuple[str, ...] = ()) -> Views:
    return (nodes, _store_view(w.store, w.now), _cache_view(w.cm.watcher, w.now),
            _cache_view(w.sched, w.now),
            tuple((n, k.up, _cache_view(k.watcher, w.now)) for n, k in w.kubelets.items()),
            tuple((n, _runtime_view(r)) for n, r in w.runtimes.items()))


def _signatures(views: Views, pods: Sequence[str]
                ) -> tuple[dict[str, Any], dict[str, tuple[Any, str, Any]]]:
    """Each node's and each pod's signature. A pod's is (what comes before its node,
    its node, what comes after): its node is renamed with the nodes. A node's holds the
    signatures of its pods (without their node), so that two nodes alike but for their
    pods are told apart."""
    nodes, store, cm, sched, kubelet_list, runtime_list = views
    kubelets = {n: view.pods for n, _, view in kubelet_list}
    runtimes = dict(runtime_list)

    def looks(pod: str, facts: Any) -> Any:
        """How ``pod`` looks everywhere but its node."""
        uid = f"uid-{pod}"
        return (facts,
                store.endpoints.get(pod, ()),
                cm.pods[pod][1] if pod in cm.pods else (),
                sched.pods[pod][1] if pod in sched.pods else (),
                tuple(sorted(k[pod][1] for k in kubelets.values() if pod in k)),
                tuple(sorted(r.pods[uid] for r in runtimes.values() if uid in r.pods)))

    looked = {pod: (node, looks(pod, facts)) for pod, (_, node, facts) in store.pods.items()}
    on_node: dict[str, list[Any]] = {}
    for node, pod_looks in looked.values():
        on_node.setdefault(node, []).append(pod_looks)
    up = {n: is_up for n, is_up, _ in kubelet_list}
    node_signatures = {n: (
        up.get(n, False),
        store.nodes.get(n, ()),
        runtimes[n].counts if n in runtimes else (0, 0),
        tuple(sorted(facts for _, facts in kubelets[n].values())) if n in kubelets else (),
        tuple(sorted(on_node.get(n, ())))) for n in nodes}
    pod_signatures = {}
    for p in pods:
        node, pod_looks = looked[p] if p in looked else ("", looks(p, ()))
        pod_signatures[p] = (pod_looks[0][0] if pod_looks[0] else "", node, pod_looks)
    return node_signatures, pod_signatures


Moves = tuple[tuple[str, str], ...]  # a renaming: (old, new) where they differ, sorted


@lru_cache(maxsize=_FACTS)
def _renamings(views: Views) -> tuple[Moves, ...]:
    """Every renaming of nodes and pods that sorts them by signature (pods after
    their nodes are renamed)."""
    nodes = views[0]
    pods = [sorted(names) for names in _names_by_rc(*views[1:5]).values() if len(names) > 1]
    node_signatures, pod_signatures = _signatures(views, [p for names in pods for p in names])
    out = []
    for node_renaming in sorting_renamings(nodes, node_signatures):
        combined = [node_renaming]
        for names in pods:
            # what the pod signatures are once the nodes are renamed
            renamed = {p: (before, node_renaming.get(node, node), after)
                       for p in names for before, node, after in [pod_signatures[p]]}
            combined = [{**c, **_pod_renaming(list(r), list(r.values()))}
                        for c in combined for r in sorting_renamings(names, renamed)]
        out += [_moves(c) for c in combined]
    return tuple(out)


def _pod_renaming(old: Sequence[str], new: Sequence[str]) -> dict[str, str]:
    names = {}
    for a, b in zip(old, new, strict=True):
        names[a] = b
        names[f"uid-{a}"] = f"uid-{b}"  # the model's uids follow the name
    return names


# ----------------------------------------------------------------------- canonical


class ClusterSymmetry:
    """Nodes and each RC's pods renamed to a canonical representative.

    Exact (one representative per orbit, which liveness under symmetry needs): the
    least (``least``: by ``key``, collisions broken by structure) of every node
    renaming that sorts nodes by signature combined with every pod renaming that sorts
    each RC's pods by signature. Node signatures do not mention pod names and pod
    signatures are taken after the nodes are renamed, so that set of candidates is the
    same for every member of an orbit. (Canonicalising nodes and then pods one after
    the other is not exact: which node renaming wins depends on the pods' names.)
    """

    exact = True

    def __init__(self, nodes: Sequence[str], key: Callable[[World], Any] = hash) -> None:
        self.nodes = tuple(nodes)
        self.key = key  # the order's first criterion (tests force collisions with it)
        #: Worlds already canonicalised -> their representative: a search generates most
        #: states several times (once per path into them)
        self._known: dict[World, World] = {}

    def canonical(self, w: World) -> World:
        known = self._known.get(w)
        if known is None:
            renamings = _renamings(_views(w, self.nodes))
            if len(renamings) == 1:
                known = cast(World, _renamed(w, renamings[0]))
            else:
                known = least((cast(World, _renamed(w, r)) for r in renamings), self.key)
            if len(self._known) >= _KNOWN_LIMIT:
                self._known.clear()
            self._known[w] = known
        return known

    def candidates(self, w: World) -> Iterator[World]:
        """The renamed Worlds ``canonical`` chooses among."""
        return (cast(World, _renamed(w, r)) for r in _renamings(_views(w, self.nodes)))


__all__ = ["ClusterSymmetry", "rename"]
