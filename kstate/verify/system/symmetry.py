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

from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any, cast

import attrs

from kstate.api.frozen import EMPTY, FrozenDict
from kstate.api.helpers import get_condition
from kstate.api.lifecycle import pod_state
from kstate.api.meta import KubeObject
from kstate.api.objects import Node, Pod
from kstate.node.simulated import SimulatedNode
from kstate.verify.checker.symmetry import least, sorting_renamings
from kstate.verify.system.world import World, stamped

# ----------------------------------------------------------------------- renaming


def rename(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with every name replaced according to ``names`` (the parts of
    ``value`` that mention none of them are returned as they are, not copied)."""
    moved = tuple(sorted((k, v) for k, v in names.items() if k != v))
    if not moved:
        return value
    renaming = _RENAMINGS.get(moved)
    if renaming is None:
        if _Renaming.cached > _CACHE_LIMIT:
            _RENAMINGS.clear()
            _RENAMED.clear()
            _Renaming.cached = 0
        renaming = _RENAMINGS[moved] = _Renaming(dict(moved))
    return renaming(value)


#: One ``_Renaming`` per renaming in use, each with what it renamed so far.
_RENAMINGS: dict[tuple[tuple[str, str], ...], _Renaming] = {}
#: Every value a renaming built, once: two renamings that build equal values (of a state
#: that some renaming maps to itself) hand back the same object, so comparing the
#: candidates they give takes one look instead of a walk through two equal Worlds.
_RENAMED: dict[Any, Any] = {}
#: Renamed values kept over all renamings before they are dropped (memory bound).
_CACHE_LIMIT = 1_000_000
_ATOMS = (int, float, bool, type(None))
#: Facts about single values kept for the signatures, per kind of fact.
_FACTS = 100_000


class _Renaming:
    """One renaming, applied to values; each distinct value is renamed once (states
    share objects: the caches hold the store's, neighbouring states most of theirs)."""

    cached = 0  # values remembered by every renaming together

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.done: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        cls = type(value)
        if cls in _ATOMS:
            return value
        done = self.done.get(value, _MISSING) if cls is str or cls in _CONTAINERS \
            or attrs.has(cls) else value
        if done is _MISSING:
            done = self._renamed(value)
            if done is not value and cls is not str:
                done = _RENAMED.setdefault(done, done)
            self.done[value] = done
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
            pairs = [(self(k), self(v)) for k, v in value.items()]
            if all(nk is k and nv is v for (nk, nv), (k, v) in zip(pairs, value.items(),
                                                                  strict=True)):
                return value
            return FrozenDict(pairs)
        if isinstance(value, frozenset):
            members = [self(v) for v in value]
            return value if _same(members, value) else frozenset(members)
        changes = {}
        for f in _fields(cast(Hashable, type(value))):
            old = getattr(value, f)
            new = self(old)
            if new is not old:
                changes[f] = new
        if not changes:
            return value
        renamed = attrs.evolve(value, **changes)
        return stamped(renamed) if isinstance(renamed, KubeObject) else renamed

    def _string(self, value: str) -> str:
        if "/" not in value:
            return _rename_word(value, self.table)
        new = "/".join(_rename_word(p, self.table) for p in value.split("/"))
        return value if new == value else new


_MISSING = object()
_CONTAINERS = (tuple, FrozenDict, frozenset)


def _same(new: Any, old: Any) -> bool:
    return all(a is b for a, b in zip(new, old, strict=True))


def _sorted_like(old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    """``new`` kept in id order when ``old`` was: a runtime lists its sandboxes and
    containers by id (which holds the pod's uid), so after renaming pods the state the
    model itself would build is the re-sorted one."""
    if len(new) < 2:
        return new
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


@cache
def _fields(cls: Hashable) -> tuple[str, ...]:
    # init=False fields (caches) cannot be passed to evolve and carry no names.
    return tuple(f.name for f in attrs.fields(cast(type, cls))
                 if f.init and f.name != "json_order")


# ----------------------------------------------------------------------- signatures
#
# What a node or a pod looks like without its name. Computed on every state, from facts
# about single values, each remembered: pods, nodes, caches and runtimes recur across
# states far more than whole states do.


@lru_cache(maxsize=_FACTS)
def _pod_facts(pod: Pod, now: float) -> tuple[str, str, Any]:
    """(its state, its node, what else tells it apart) of a stored pod."""
    return (pod_state(pod, now), pod.spec.node_name,
            (tuple(sorted((c.name, c.restart_count) for c in pod.status.container_statuses)),
             pod.metadata.creation_timestamp))


@lru_cache(maxsize=_FACTS)
def _node_facts(node: Node) -> tuple[Any, ...]:
    ready = get_condition(node.status.conditions, "Ready")
    return (ready.status if ready is not None else "", node.spec.unschedulable,
            tuple(sorted(t.key for t in node.spec.taints)))


@lru_cache(maxsize=_FACTS)
def _runtime_facts(runtime: SimulatedNode) -> tuple[int, int, Counter[str]]:
    """(containers, running ones, running ones by pod uid) on one node."""
    running = runtime.running()
    return len(runtime.containers), len(running), Counter(c.pod_uid for c in running)


@lru_cache(maxsize=_FACTS)
def _owned(objects: FrozenDict[str, Any], pending: FrozenDict[str, Any]) -> frozenset[
        tuple[str, str]]:
    """(RC, pod name) of every pod owned by an RC in a store or cache and its pending
    events."""
    pods = [*objects.values(), *(obj for queue in pending.values() for _, obj in queue)]
    return frozenset((p.metadata.owner_references[0].name, p.metadata.name) for p in pods
                     if isinstance(p, Pod) and p.metadata.owner_references)


def _pod_names(w: World) -> dict[str, set[str]]:
    """Pod names of each RC found anywhere in ``w`` (store, caches, pending events,
    runtimes): a pod deleted from the store may live on in a lagging cache or as
    containers, and a renaming must rename it everywhere at once."""
    owners: dict[str, set[str]] = {}
    watchers = [w.cm.watcher, w.sched, *(k.watcher for k in w.kubelets.values())]
    for owned in (_owned(w.store, EMPTY), *(_owned(x.cache, x.pending) for x in watchers)):
        for rc, name in owned:
            owners.setdefault(rc, set()).add(name)
    return owners


def _signatures(w: World, nodes: Sequence[str], pods: Sequence[str]
                ) -> tuple[dict[str, Any], dict[str, tuple[Any, str, Any]]]:
    """Each node's and each pod's signature. A pod's is (what comes before its node,
    its node, what comes after): its node is renamed with the nodes."""
    stored = {p.metadata.name: _pod_facts(p, w.now) for p in w.pods()}
    running: Counter[str] = Counter()
    for runtime in w.runtimes.values():
        running.update(_runtime_facts(runtime)[2])
    on_node: dict[str, list[str]] = {}
    for state, node, _ in stored.values():
        on_node.setdefault(node, []).append(state)
    node_signatures = {}
    for n in nodes:
        obj, kubelet, runtime = w.get(f"Node//{n}"), w.kubelets.get(n), w.runtimes.get(n)
        node_signatures[n] = (
            kubelet.up if kubelet is not None else None,
            _node_facts(obj) if isinstance(obj, Node) else None,
            tuple(sorted(on_node.get(n, ()))),
            _runtime_facts(runtime)[:2] if runtime is not None else (0, 0))
    pod_signatures = {}
    for p in pods:
        state, node, rest = stored.get(p, ("", "", ()))
        pod_signatures[p] = (state, node, (rest, running[f"uid-{p}"]))
    return node_signatures, pod_signatures


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

    def canonical(self, w: World) -> World:
        renamings = self.renamings(w)
        if len(renamings) == 1:
            return cast(World, rename(w, renamings[0]))
        return least((cast(World, rename(w, r)) for r in renamings), self.key)

    def candidates(self, w: World) -> Iterator[World]:
        """The renamed Worlds ``canonical`` chooses among."""
        return (cast(World, rename(w, r)) for r in self.renamings(w))

    def renamings(self, w: World) -> list[dict[str, str]]:
        """Every renaming of nodes and pods that sorts them by signature (pods after
        their nodes are renamed), worked out without renaming ``w``."""
        pods = [sorted(names) for names in _pod_names(w).values() if len(names) > 1]
        node_signatures, pod_signatures = _signatures(
            w, self.nodes, [p for names in pods for p in names])
        out = []
        for nodes in sorting_renamings(self.nodes, node_signatures):
            combined = [nodes]
            for names in pods:
                # what the pod signature is once the nodes are renamed
                renamed = {p: (before, nodes.get(node, node), after)
                           for p in names
                           for before, node, after in [pod_signatures[p]]}
                combined = [{**c, **_pod_renaming(list(r), list(r.values()))}
                            for c in combined for r in sorting_renamings(names, renamed)]
            out += combined
        return out


__all__ = ["ClusterSymmetry", "rename"]
