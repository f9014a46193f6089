"""Symmetry over nodes: clusters that differ only by node names are one state.

Where it sits: ``kstate.verify.system``; ``Scenario.model`` installs it as the model's
``canonical``. Identical nodes are interchangeable — renaming them maps every behaviour
to a behaviour — so the checker stores one World per renaming class.

Renaming is structural: every string that *is* a node name (``spec.nodeName``, a Node's
or Lease's name, a store key segment, a map key) is replaced, and every object is
re-stamped with its content-addressed resourceVersion, so caches and store stay
consistent. Properties never name a node, so they cannot tell renamed states apart.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any, cast

import attrs

from kstate.api.frozen import FrozenDict
from kstate.api.helpers import get_condition
from kstate.api.lifecycle import pod_state
from kstate.api.meta import KubeObject
from kstate.api.objects import EndpointAddress, Node, Pod
from kstate.control.endpoints import address_order
from kstate.verify.checker import Symmetry
from kstate.verify.system.world import World, stamped


def rename(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with every node name replaced according to ``names``."""
    return _rename(value, tuple(sorted(names.items())))


@lru_cache(maxsize=500_000)
def _renamed_object(value: Any, names: tuple[tuple[str, str], ...]) -> Any:
    # Objects repeat across states (caches hold the store's objects; neighbouring
    # states share most of them): rename each distinct one once.
    return _rename_fields(value, names)


def _rename(value: Any, names: tuple[tuple[str, str], ...]) -> Any:
    if attrs.has(type(value)):
        return _renamed_object(value, names)
    return _rename_plain(value, names)


def _rename_plain(value: Any, names: tuple[tuple[str, str], ...]) -> Any:
    table = dict(names)
    if isinstance(value, str):
        if "/" in value:
            return "/".join(_rename_word(p, table) for p in value.split("/"))
        if " " in value:  # a message: "... container=app pod=web-0" names its pod
            return _WORD.sub(lambda m: _rename_word(m.group(), table), value)
        return _rename_word(value, table)
    if isinstance(value, tuple):
        renamed = tuple(_rename(v, names) for v in value)
        return _sorted_like(value, renamed)
    if isinstance(value, FrozenDict):
        return FrozenDict({_rename(k, names): _rename(v, names) for k, v in value.items()})
    if isinstance(value, frozenset):
        return frozenset(_rename(v, names) for v in value)
    return value


_WORD = re.compile(r"[^\s=/]+")


def _sorted_like(old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    """``new`` kept in the order the model keeps it: a runtime lists its sandboxes and
    containers by id (which holds the pod's uid), an Endpoints subset its addresses by
    IP then pod name, so after renaming pods the state the model itself would build is
    the re-sorted one."""
    if len(new) < 2 or new == old:
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


def _rename_fields(value: Any, names: tuple[tuple[str, str], ...]) -> Any:
    changes = {}
    for f in _fields(cast(Hashable, type(value))):
        old = getattr(value, f)
        new = _rename(old, names)
        if new is not old and new != old:
            changes[f] = new
    if not changes:
        return value
    renamed = attrs.evolve(value, **changes)
    return stamped(renamed) if isinstance(renamed, KubeObject) else renamed


@cache
def _fields(cls: Hashable) -> tuple[str, ...]:
    # init=False fields (caches) cannot be passed to evolve and carry no names.
    return tuple(f.name for f in attrs.fields(cast(type, cls))
                 if f.init and f.name != "json_order")


def _signature(w: World, node: str) -> Any:
    """How ``node`` looks in ``w`` without its name: a cheap, rename-invariant summary."""
    obj = w.get(f"Node//{node}")
    ready = get_condition(obj.status.conditions, "Ready") if isinstance(obj, Node) else None
    pods = sorted(pod_state(p, w.now) for p in w.pods()
                  if isinstance(p, Pod) and p.spec.node_name == node)
    kubelet = w.kubelets.get(node)
    runtime = w.runtimes.get(node)
    return (
        kubelet.up if kubelet is not None else None,
        ready.status if ready is not None else "",
        obj.spec.unschedulable if isinstance(obj, Node) else None,
        tuple(sorted(t.key for t in obj.spec.taints)) if isinstance(obj, Node) else (),
        tuple(pods),
        len(runtime.containers) if runtime is not None else 0,
        len(runtime.running()) if runtime is not None else 0,
    )


class NodeSymmetry:
    """``canonical(world)``: the least renaming of interchangeable nodes."""

    def __init__(self, nodes: Sequence[str]) -> None:
        self._symmetry: Symmetry[World, str] = Symmetry(
            tuple(nodes), self.permute, signature=_signature)

    @staticmethod
    def permute(w: World, names: Mapping[str, str]) -> World:
        if all(k == v for k, v in names.items()):
            return w
        renamed: World = rename(w, names)
        return renamed

    def canonical(self, w: World) -> World:
        return self._symmetry.canonical(w)

    def candidates(self, w: World) -> Iterator[World]:
        return self._symmetry.candidates(w)


# ----------------------------------------------------------------------- pods


def _pod_names(w: World) -> dict[str, set[str]]:
    """Pod names of each RC found anywhere in ``w`` (store, caches, pending events,
    runtimes): a pod deleted from the store may live on in a lagging cache or as
    containers, and a renaming must rename it everywhere at once."""
    owners: dict[str, set[str]] = {}

    def note(pod: Any) -> None:
        if isinstance(pod, Pod) and pod.metadata.owner_references:
            owners.setdefault(pod.metadata.owner_references[0].name, set()).add(
                pod.metadata.name)

    for obj in w.store.values():
        note(obj)
    watchers = [w.cm.watcher, w.sched, *(k.watcher for k in w.kubelets.values())]
    for watcher in watchers:
        for cached in watcher.cache.values():
            note(cached)
        for queue in watcher.pending.values():
            for _, pending in queue:
                note(pending)
    return owners


def _pod_signature(w: World, name: str) -> Any:
    """How pod ``name`` looks without its name (its generated suffix is arbitrary)."""
    pod = w.get(f"Pod/default/{name}")
    uid = f"uid-{name}"
    running = sum(1 for rt in w.runtimes.values() for c in rt.running() if c.pod_uid == uid)
    return (
        pod_state(pod, w.now) if isinstance(pod, Pod) else "",
        pod.spec.node_name if isinstance(pod, Pod) else "",
        tuple(sorted((c.name, c.restart_count) for c in pod.status.container_statuses))
        if isinstance(pod, Pod) else (),
        pod.metadata.creation_timestamp if isinstance(pod, Pod) else "",
        running,
    )


def _pod_renaming(old: Sequence[str], new: Sequence[str]) -> dict[str, str]:
    names = {}
    for a, b in zip(old, new, strict=True):
        names[a] = b
        names[f"uid-{a}"] = f"uid-{b}"  # the model's uids follow the name
    return names


def canonical_pods(w: World) -> World:
    """``w`` with each RC's pods renamed among their own names in signature order.

    The set of names is kept (so ``generateName``'s counter stays valid); only which pod
    carries which generated suffix changes — pods of one RC are interchangeable.
    """
    return min(_pod_candidates(w), key=hash)


def _pod_candidates(w: World) -> list[World]:
    """Every combination of each RC's signature-sorting renamings: taking the least
    over all of them (not RC by RC) keeps the representative exact with several RCs."""
    out = [w]
    for names in _pod_names(w).values():
        if len(names) < 2:
            continue
        ordered = sorted(names)
        sym: Symmetry[World, str] = Symmetry(
            tuple(ordered), lambda state, r: rename(state, _pod_renaming(list(r), list(r.values())))
            if any(k != v for k, v in r.items()) else state,
            signature=_pod_signature)
        out = [c for state in out for c in sym.candidates(state)]
    return out


class ClusterSymmetry:
    """Nodes and each RC's pods renamed to a canonical representative.

    Exact (one representative per orbit, which liveness under symmetry needs): the
    least, by hash, of every node renaming that sorts nodes by signature combined with
    every pod renaming that sorts each RC's pods by signature. Node signatures do not
    mention pod names and pod signatures are taken after the nodes are renamed, so
    that set of candidates is the same for every member of an orbit. (Canonicalising
    nodes and then pods one after the other is not exact: which node renaming wins
    depends on the pods' names.)
    """

    exact = True

    def __init__(self, nodes: Sequence[str]) -> None:
        self.nodes = NodeSymmetry(nodes) if len(nodes) > 1 else None

    def canonical(self, w: World) -> World:
        if self.nodes is None:
            return canonical_pods(w)
        return min((p for n in self.nodes.candidates(w) for p in _pod_candidates(n)),
                   key=hash)


__all__ = ["ClusterSymmetry", "NodeSymmetry", "canonical_pods", "rename"]
