"""What the scheduler reads from a Pod and a Node, parsed once into plain numbers.

Where it sits: the first step of every scheduling path. ``pod_facts`` turns the pod being
scheduled (and every pod placed on a node) into requests in millicores and bytes, host
ports and owner; ``node_facts`` turns a Node into allocatable numbers, labels, taints and
cordon. The filters and scores (``plugins.py``), the snapshot (``snapshot.py``) and the
vectorised path (``vectorised.py``) only ever see these facts, so quantity strings are
parsed once per object, not once per (pod, node) pair.

Kubernetes' rules kept here:

* requests are the sum over the pod's containers (init containers and pod overhead are
  not modelled); an unset request is 0 for NodeResourcesFit and BalancedAllocation, and
  100m CPU / 200 MiB for LeastAllocated (``schedutil.DefaultMilliCPURequest`` /
  ``DefaultMemoryRequest``, applied per container when the request is *absent*);
* host ports are (hostIP, protocol, hostPort) with hostIP defaulting to ``0.0.0.0`` and
  protocol to TCP, as the scheduler's ``HostPortInfo`` sanitises them;
* a node's allocatable that is missing or unparsable counts as zero, and the resource is
  remembered as *unreported* so the FailedScheduling event can say so.

Numbers are clamped to 2**53 so every path — Python ints, numpy int64 and float64 —
computes exactly the same scores (Kubernetes' own quantities are int64).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping

import attrs

from kstate.api.frozen import EMPTY, FrozenDict
from kstate.api.helpers import controller_of
from kstate.api.objects import Node, NodeSelector, Pod, Taint, Toleration
from kstate.api.quantity import QuantityError, parse_quantity

CPU, MEMORY, PODS = "cpu", "memory", "pods"
#: Kubernetes' non-zero defaults for scoring pods that leave a request unset.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
#: Largest quantity kept exactly (beyond it numpy's float64 would round).
MAX_QUANTITY = 2**53

ALL_IPS = "0.0.0.0"
_MASK64 = (1 << 64) - 1


def stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process (``hash()`` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def mix(a: int, b: int) -> int:
    """splitmix64 of ``a ^ b``: the deterministic tie-breaker of two stable hashes.

    The vectorised path computes the same function on numpy uint64 arrays.
    """
    z = ((a ^ b) + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=4096)
def _scaled(text: str, scale: int) -> int:
    """``text`` times ``scale``, rounded up like Kubernetes, clamped to MAX_QUANTITY.

    Cached: a cluster's pods repeat a handful of quantity strings, and exact parsing
    (``Fraction``) is the slowest step of reading a pod.
    """
    value = -((-parse_quantity(text) * scale) // 1)
    return max(0, min(int(value), MAX_QUANTITY))


def milli(text: str) -> int:
    return _scaled(text, 1000)


def whole(text: str) -> int:
    return _scaled(text, 1)


# --------------------------------------------------------------------------- pods


@attrs.frozen
class HostPort:
    """One host port a pod binds, sanitised as the scheduler's ``HostPortInfo`` does."""

    ip: str
    protocol: str
    port: int


#: What the static filters read from a pod; pods with equal constraints are filtered
#: alike on every node, so the vectorised path memoises per constraint.
Constraints = tuple[tuple[Toleration, ...], FrozenDict[str, str], NodeSelector | None]


@attrs.frozen
class PodFacts:
    """A pod as the scheduler sees it."""

    key: str
    namespace: str
    name: str
    uid: str
    cpu: int = 0  #: requested millicores (0 when unset)
    memory: int = 0  #: requested bytes
    nonzero_cpu: int = 0  #: millicores with the 100m default per container
    nonzero_memory: int = 0  #: bytes with the 200 MiB default per container
    ports: tuple[HostPort, ...] = ()
    owner: str = ""  #: uid of the controlling owner ("" for none)
    deleting: bool = False
    tolerations: tuple[Toleration, ...] = ()
    node_selector: FrozenDict[str, str] = EMPTY
    required: NodeSelector | None = None  #: requiredDuringScheduling node affinity
    hash: int = 0  #: stable hash of the uid: start index and tie-breaker
    error: str = ""  #: why the requests could not be read ("" when fine)

    @property
    def constraints(self) -> Constraints:
        return (self.tolerations, self.node_selector, self.required)

    @property
    def best_effort(self) -> bool:
        return self.cpu == 0 and self.memory == 0


def pod_key(pod: Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def pod_facts(pod: Pod) -> PodFacts:
    """Parse ``pod`` once. Unparsable requests (validation normally rejects them) give
    zero requests and a non-empty ``error``; they never raise."""
    cpu = memory = nonzero_cpu = nonzero_memory = 0
    ports: list[HostPort] = []
    error = ""
    for c in pod.spec.containers:
        requests = c.resources.requests
        try:
            c_cpu = milli(requests[CPU]) if CPU in requests else None
            c_mem = whole(requests[MEMORY]) if MEMORY in requests else None
        except (QuantityError, TypeError) as e:
            error = error or f"container {c.name!r}: {e}"
            c_cpu = c_mem = None
        cpu += c_cpu or 0
        memory += c_mem or 0
        nonzero_cpu += DEFAULT_MILLI_CPU if c_cpu is None else c_cpu
        nonzero_memory += DEFAULT_MEMORY if c_mem is None else c_mem
        for p in c.ports:
            if p.host_port > 0:
                ports.append(HostPort(p.host_ip or ALL_IPS, p.protocol or "TCP", p.host_port))
    ref = controller_of(pod)
    affinity = pod.spec.affinity
    node_affinity = affinity.node_affinity if affinity is not None else None
    meta = pod.metadata
    key = f"{meta.namespace}/{meta.name}"
    return PodFacts(
        key=key, namespace=meta.namespace, name=meta.name, uid=meta.uid,
        cpu=cpu, memory=memory, nonzero_cpu=nonzero_cpu, nonzero_memory=nonzero_memory,
        ports=tuple(ports), owner=ref.uid if ref is not None else "",
        deleting=bool(meta.deletion_timestamp),
        tolerations=pod.spec.tolerations, node_selector=pod.spec.node_selector,
        required=(node_affinity.required_during_scheduling_ignored_during_execution
                  if node_affinity is not None else None),
        hash=stable_hash(meta.uid or key), error=error,
    )


# --------------------------------------------------------------------------- nodes


@attrs.frozen
class NodeFacts:
    """A node as the scheduler sees it: identity, static constraints, allocatable."""

    name: str
    labels: FrozenDict[str, str] = EMPTY
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    cpu: int = 0  #: allocatable millicores
    memory: int = 0  #: allocatable bytes
    pods: int = 0  #: allocatable pod count
    unreported: frozenset[str] = frozenset()  #: allocatable resources missing/unparsable
    hash: int = 0

    @property
    def statics(self) -> tuple[FrozenDict[str, str], tuple[Taint, ...], bool]:
        """What the static filters read (a change here invalidates their memo)."""
        return (self.labels, self.taints, self.unschedulable)


def _allocatable(values: Mapping[str, str], name: str, scale: int) -> int | None:
    text = values.get(name)
    if text is None:
        return None
    try:
        return _scaled(text, scale)
    except (QuantityError, TypeError):
        return None


def node_facts(node: Node) -> NodeFacts:
    """Parse ``node`` once; missing or unparsable allocatable counts as zero."""
    alloc = node.status.allocatable
    cpu = _allocatable(alloc, CPU, 1000)
    memory = _allocatable(alloc, MEMORY, 1)
    pods = _allocatable(alloc, PODS, 1)
    unreported = frozenset(
        name for name, value in ((CPU, cpu), (MEMORY, memory), (PODS, pods)) if value is None
    )
    name = node.metadata.name
    return NodeFacts(
        name=name, labels=node.metadata.labels, taints=node.spec.taints,
        unschedulable=node.spec.unschedulable, cpu=cpu or 0, memory=memory or 0,
        pods=pods or 0, unreported=unreported, hash=stable_hash(name),
    )


__all__ = [
    "ALL_IPS",
    "CPU",
    "DEFAULT_MEMORY",
    "DEFAULT_MILLI_CPU",
    "MAX_QUANTITY",
    "MEMORY",
    "PODS",
    "Constraints",
    "HostPort",
    "NodeFacts",
    "PodFacts",
    "milli",
    "mix",
    "node_facts",
    "pod_facts",
    "pod_key",
    "stable_hash",
    "whole",
]
