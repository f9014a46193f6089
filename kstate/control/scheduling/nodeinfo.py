"""One node and the pods placed on it, with the sums the filters and scores need.

Where it sits: the per-node element of the cluster snapshot (``snapshot.py``). The
snapshot replaces a ``NodeInfo`` whenever a pod is assumed, bound, finished or deleted
on that node, so the aggregates (requested CPU and memory, pod count, host ports in use,
pods per controlling owner) are kept incrementally instead of being summed per
scheduling attempt — Kubernetes' ``framework.NodeInfo``, as an immutable value.

"Placed" means bound (the informer shows ``spec.nodeName``) *or* assumed (the scheduler
sent the binding and has not seen it yet): both take room, exactly like Kubernetes'
assume cache. Which of the two a pod is lives in ``ClusterSnapshot.assumed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import attrs

from kstate.api.frozen import EMPTY, FrozenDict
from kstate.control.scheduling.facts import ALL_IPS, HostPort, NodeFacts, PodFacts

K = TypeVar("K")


def _bump(counts: FrozenDict[K, int], key: K, delta: int) -> FrozenDict[K, int]:
    n = counts.get(key, 0) + delta
    return counts.set(key, n) if n > 0 else counts.without(key)


@attrs.frozen
class NodeInfo:
    """A node (``None`` while the view does not have it) and its placed pods."""

    name: str
    node: NodeFacts | None = None
    pods: FrozenDict[str, PodFacts] = EMPTY
    cpu: int = 0  #: requested millicores of the placed pods
    memory: int = 0  #: requested bytes
    nonzero_cpu: int = 0  #: the same with Kubernetes' scoring defaults for unset requests
    nonzero_memory: int = 0
    ports: FrozenDict[HostPort, int] = EMPTY  #: host ports in use (with multiplicity)
    owners: FrozenDict[str, int] = EMPTY  #: owner uid -> its non-terminating pods here

    @property
    def pod_count(self) -> int:
        return len(self.pods)

    def with_node(self, node: NodeFacts | None) -> NodeInfo:
        return attrs.evolve(self, node=node)

    def with_pod(self, pod: PodFacts) -> NodeInfo:
        """This node with ``pod`` placed on it (replacing an older copy of the pod)."""
        info = self.without_pod(pod.key) if pod.key in self.pods else self
        ports = info.ports
        for p in pod.ports:
            ports = _bump(ports, p, 1)
        owners = info.owners
        if pod.owner and not pod.deleting:
            owners = _bump(owners, pod.owner, 1)
        # The constructor, not attrs.evolve: this runs twice per scheduled pod.
        return NodeInfo(
            info.name, info.node, info.pods.set(pod.key, pod),
            info.cpu + pod.cpu, info.memory + pod.memory,
            info.nonzero_cpu + pod.nonzero_cpu, info.nonzero_memory + pod.nonzero_memory,
            ports, owners,
        )

    def without_pod(self, key: str) -> NodeInfo:
        """This node without the pod ``key`` (unchanged when it is not here)."""
        pod = self.pods.get(key)
        if pod is None:
            return self
        ports = self.ports
        for p in pod.ports:
            ports = _bump(ports, p, -1)
        owners = self.owners
        if pod.owner and not pod.deleting:
            owners = _bump(owners, pod.owner, -1)
        return NodeInfo(
            self.name, self.node, self.pods.without(key),
            self.cpu - pod.cpu, self.memory - pod.memory,
            self.nonzero_cpu - pod.nonzero_cpu, self.nonzero_memory - pod.nonzero_memory,
            ports, owners,
        )


def port_conflict(want: HostPort, used: Mapping[HostPort, int]) -> bool:
    """Whether ``want`` collides with a port in use (Kubernetes' ``CheckConflict``):
    ``0.0.0.0`` collides with every address, a specific address with itself and with
    ``0.0.0.0``, always for the same protocol and port."""
    if want.ip == ALL_IPS:
        return any(u.protocol == want.protocol and u.port == want.port for u in used)
    return (HostPort(ALL_IPS, want.protocol, want.port) in used
            or HostPort(want.ip, want.protocol, want.port) in used)


__all__ = ["NodeInfo", "port_conflict"]
