"""Property-based runs of the live engine: Hypothesis stateful machines and ``kstate fuzz``.

Where it sits: ``kstate.verify`` — the third executor of the design (ARCHITECTURE §1):
the model checker proves the design within bounds; these runs drive the real engine
(``kstate.verify.engine``: API core, store, controllers, scheduler, node agents,
runtimes) with random operations and faults and check the same invariants on it.

* ``checks`` — the invariants, each a function of a running engine;
* ``machine`` — ``ClusterMachine`` (fake runtimes) and ``DockerClusterMachine``;
* ``fuzz`` — ``run_fuzz``, what ``kstate fuzz`` calls.

``docs/stateful.md`` states every invariant in one sentence.
"""

from kstate.verify.stateful.machine import ClusterMachine, DockerClusterMachine

__all__ = ["ClusterMachine", "DockerClusterMachine"]
