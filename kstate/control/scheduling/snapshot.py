"""The scheduler's view of the cluster: nodes, what is placed on them, what is assumed.

Where it sits: the ``cluster`` half of a ``SchedulingView``. The engine keeps one
``ClusterSnapshot`` and replaces it on every informer event and every decision; the model
checker builds one from its abstract state with :meth:`ClusterSnapshot.build`. Both hand
it to the same pure ``schedule``.

What it holds:

* ``nodes`` — every candidate node (present, not being deleted), sorted by name, each
  with its placed pods and their sums (``NodeInfo``);
* ``assumed`` — pod key -> node for bindings the scheduler has sent but the informer has
  not shown yet. Those pods already take room on their node: Kubernetes' assume cache,
  made explicit so the checker can explore the race between a binding and the next
  decision (drop ``assumed`` and two pods that each fit alone land on one node);
* ``detached`` — pods bound to nodes the view does not have (yet, or any more): they
  count again as soon as the node appears, as in Kubernetes' cache;
* ``columns`` — the same numbers as numpy arrays for ``vectorised.py``, updated in step.

Every change is a new snapshot that shares almost everything with the old one: a pod
event replaces one ``NodeInfo`` (one 64-entry chunk of a ``PVector``) and copies the
requested-resources column (a ~200 KB memcpy at 5,000 nodes); adding or removing a
*node* rebuilds the sorted vector and the columns (O(nodes)), so a burst of them (an
informer's initial list) goes through ``with_nodes`` and pays that once. Events map
onto methods as follows:

==========================  =================================================
event                       method
==========================  =================================================
pod added / updated         ``with_pod(pod)`` (confirms an assumed pod)
pod deleted                 ``without_pod(pod)``
scheduler chose a node      ``assume(pod, node)``
binding failed              ``forget(pod)``
node added / updated        ``with_node(node)`` (deleting => removed)
node deleted                ``without_node(name)``
a burst of node events      ``with_nodes(nodes, removed=names)``
==========================  =================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import attrs

from kstate.api.frozen import EMPTY, FrozenDict
from kstate.api.objects import Node, Pod
from kstate.control.scheduling.facts import node_facts, pod_facts, pod_key
from kstate.control.scheduling.nodeinfo import NodeInfo
from kstate.control.scheduling.persistent import PMap, PVector
from kstate.control.scheduling.vectorised import Columns

_TERMINAL = ("Succeeded", "Failed")


def occupies_node(pod: Pod) -> bool:
    """Whether a pod takes room on its node: bound and not finished. Terminating pods
    still do until they are gone (Kubernetes' scheduler cache keeps them)."""
    return bool(pod.spec.node_name) and pod.status.phase not in _TERMINAL


@attrs.frozen(eq=False)
class ClusterSnapshot:
    """An immutable cluster view for scheduling; see the module docstring."""

    nodes: PVector[NodeInfo] = attrs.field(factory=PVector)
    positions: FrozenDict[str, int] = EMPTY
    assumed: PMap[str] = attrs.field(factory=PMap)
    #: a PMap, not a FrozenDict: pods listed before their nodes all land here, and a
    #: FrozenDict would copy every entry per pod
    detached: PMap[NodeInfo] = attrs.field(factory=PMap)
    columns: Columns = attrs.field(factory=lambda: Columns.build(()))

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        nodes: Iterable[Node] = (),
        pods: Iterable[Pod] = (),
        assumed: Iterable[tuple[Pod, str]] = (),
    ) -> ClusterSnapshot:
        """A snapshot from informer caches: ``nodes``, ``pods`` (any; only bound,
        unfinished ones count) and the scheduler's ``assumed`` (pod, node) bindings.

        >>> from kstate.api.objects import Node
        >>> from kstate.api.meta import ObjectMeta
        >>> snap = ClusterSnapshot.build([Node(metadata=ObjectMeta(name="n1"))])
        >>> [info.name for info in snap.nodes]
        ['n1']
        """
        infos: dict[str, NodeInfo] = {}
        for node in nodes:
            if not node.metadata.deletion_timestamp:
                infos[node.metadata.name] = NodeInfo(node.metadata.name, node_facts(node))
        detached: dict[str, NodeInfo] = {}

        def place(name: str, pod: Pod) -> None:
            table = infos if name in infos else detached
            table[name] = table.get(name, NodeInfo(name)).with_pod(pod_facts(pod))

        bound: set[str] = set()
        for pod in pods:
            if occupies_node(pod):
                place(pod.spec.node_name, pod)
                bound.add(pod_key(pod))
        pending: dict[str, str] = {}
        for pod, name in assumed:
            key = pod_key(pod)
            if key not in bound and pod.status.phase not in _TERMINAL:
                place(name, pod)
                pending[key] = name
        return cls._of(sorted(infos.values(), key=lambda i: i.name), PMap(pending),
                       PMap(detached))

    @classmethod
    def _of(cls, infos: list[NodeInfo], assumed: PMap[str],
            detached: PMap[NodeInfo]) -> ClusterSnapshot:
        return cls(
            nodes=PVector(infos),
            positions=FrozenDict({info.name: i for i, info in enumerate(infos)}),
            assumed=assumed, detached=detached, columns=Columns.build(infos),
        )

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> NodeInfo | None:
        """The candidate node ``name``, ``None`` when the view does not have it."""
        index = self.positions.get(name)
        return self.nodes[index] if index is not None else None

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    # ------------------------------------------------------------------ pods

    def with_pod(self, pod: Pod) -> ClusterSnapshot:
        """After an informer ADDED/MODIFIED pod event. A bound pod is placed (and, if it
        was assumed, confirmed: it stops being assumed); a finished one is removed; an
        unbound one changes nothing — in particular an assumed pod stays assumed while
        its binding is not visible yet."""
        key = pod_key(pod)
        node = pod.spec.node_name
        was = self.assumed.get(key)
        if not node:
            if was is None or pod.status.phase not in _TERMINAL:
                return self
            return self._unassume(key, was)
        if not occupies_node(pod):
            snap = self._unassume(key, was) if was is not None else self
            return snap._change(node, lambda info: info.without_pod(key))
        facts = pod_facts(pod)
        snap = self
        if was is not None:
            snap = self._with(assumed=self.assumed.remove(key))
            if was == node and snap._info(node).pods.get(key) == facts:
                return snap  # confirmed as assumed: its room is already counted
            if was != node:
                snap = snap._change(was, lambda info: info.without_pod(key))
        return snap._change(node, lambda info: info.with_pod(facts))

    def without_pod(self, pod: Pod) -> ClusterSnapshot:
        """After an informer DELETED pod event (assumed or bound, it frees its room)."""
        key = pod_key(pod)
        was = self.assumed.get(key)
        snap = self._unassume(key, was) if was is not None else self
        node = pod.spec.node_name
        if node and node != was:
            snap = snap._change(node, lambda info: info.without_pod(key))
        return snap

    def assume(self, pod: Pod, node: str) -> ClusterSnapshot:
        """The scheduler decided ``pod`` -> ``node`` and sends the binding: the pod takes
        room there from now on, before the informer can show it."""
        key = pod_key(pod)
        was = self.assumed.get(key)
        snap = self._unassume(key, was) if was is not None else self
        facts = pod_facts(pod)
        snap = snap._change(node, lambda info: info.with_pod(facts))
        return snap._with(assumed=snap.assumed.set(key, node))

    def forget(self, pod: Pod | str) -> ClusterSnapshot:
        """The binding failed: the assumed pod gives its room back."""
        key = pod if isinstance(pod, str) else pod_key(pod)
        was = self.assumed.get(key)
        return self._unassume(key, was) if was is not None else self

    def _unassume(self, key: str, node: str) -> ClusterSnapshot:
        snap = self._with(assumed=self.assumed.remove(key))
        return snap._change(node, lambda info: info.without_pod(key))

    # ------------------------------------------------------------------ nodes

    def with_node(self, node: Node) -> ClusterSnapshot:
        """After an informer ADDED/MODIFIED node event; a node being deleted stops being
        a candidate at once (lifecycle state Removed)."""
        return self.with_nodes((node,))

    def without_node(self, name: str) -> ClusterSnapshot:
        """After an informer DELETED node event: no longer a candidate; its pods wait in
        ``detached`` in case it comes back (or until their own delete events)."""
        return self.with_nodes((), removed=(name,))

    def with_nodes(self, nodes: Iterable[Node] = (),
                   removed: Iterable[str] = ()) -> ClusterSnapshot:
        """After a burst of node events: ``nodes`` added or updated (the last version of
        a name wins; being deleted counts as removed) and the nodes named in ``removed``
        gone — the same snapshot as ``with_node`` / ``without_node`` one event at a
        time, but every node that joins or leaves costs one shared rebuild of the sorted
        vector and the columns instead of one each. That is what keeps a scheduler's
        start-up (an informer listing 5,000 nodes) linear.

        >>> from kstate.api.meta import ObjectMeta
        >>> snap = ClusterSnapshot.build().with_nodes(
        ...     [Node(metadata=ObjectMeta(name=n)) for n in ("b", "a")])
        >>> [info.name for info in snap.nodes]
        ['a', 'b']
        """
        gone = set(removed)
        latest = {node.metadata.name: node for node in nodes}
        snap = self
        joining: list[NodeInfo] = []
        for name, node in latest.items():
            gone.discard(name)
            if node.metadata.deletion_timestamp:
                gone.add(name)
                continue
            facts = node_facts(node)
            index = snap.positions.get(name)
            if index is None:
                joining.append(snap.detached.get(name, NodeInfo(name)).with_node(facts))
            elif snap.nodes[index].node != facts:  # equal: a status heartbeat, ignored
                snap = snap._change(name, functools.partial(NodeInfo.with_node, node=facts))
        gone.intersection_update(snap.positions)
        if not joining and not gone:
            return snap
        detached = snap.detached
        kept: list[NodeInfo] = []
        for info in snap.nodes:
            if info.name not in gone:
                kept.append(info)
            elif info.pods:
                detached = detached.set(info.name, info.with_node(None))
        for info in joining:
            detached = detached.remove(info.name)
        return snap._of(sorted([*kept, *joining], key=lambda i: i.name), snap.assumed,
                        detached)

    # ------------------------------------------------------------------ one node

    def _info(self, name: str) -> NodeInfo:
        """Node ``name``'s info, candidate or detached (empty when unknown)."""
        index = self.positions.get(name)
        if index is not None:
            return self.nodes[index]
        return self.detached.get(name, NodeInfo(name))

    def _change(self, name: str, change: Callable[[NodeInfo], NodeInfo]) -> ClusterSnapshot:
        """Apply ``change`` to one node's info, keeping the columns in step."""
        index = self.positions.get(name)
        if index is not None:
            old = self.nodes[index]
            new = change(old)
            if new is old:
                return self
            return self._with(nodes=self.nodes.set(index, new),
                              columns=self.columns.with_node_info(index, old, new))
        info = change(self._info(name))
        detached = self.detached.set(name, info) if info.pods else self.detached.remove(name)
        return self._with(detached=detached)

    def _with(self, *, nodes: PVector[NodeInfo] | None = None, assumed: PMap[str] | None = None,
              detached: PMap[NodeInfo] | None = None,
              columns: Columns | None = None) -> ClusterSnapshot:
        """A copy with some parts replaced (the constructor: attrs.evolve is several times
        slower, and this runs a few times per scheduled pod)."""
        return ClusterSnapshot(
            self.nodes if nodes is None else nodes, self.positions,
            self.assumed if assumed is None else assumed,
            self.detached if detached is None else detached,
            self.columns if columns is None else columns,
        )


__all__ = ["ClusterSnapshot", "occupies_node"]
