"""Seeded bugs for ``kstate fuzz``: the live engine with one plausible broken component
must fail an invariant within a stated budget, on a fixed list of seeds.

The mechanism is the checker's (tests/verify/test_seeded_bugs.py): a decision swapped
for a broken variant through the engine's own seam (``EngineConfig.replication_fn``,
``nodelifecycle_fn``, ``reconcilers``, ``agent_view_fn``) — never a patched module. Each
bug is a ``ClusterMachine`` subclass whose engine carries it; ``run_fuzz`` — what
``kstate fuzz --runtime fake`` runs — drives it with the same rules, and must report the
failure with its shrunk program (printed as ``kstate fuzz`` prints it; ``pytest -s``
shows it).

Budget (docs/stateful.md): at most ``EXAMPLES`` programs of at most ``STEPS`` rules per
seed, seeds ``SEEDS``, shrinking included; the whole file runs in well under 90 s on
two cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from kstate.api.objects import Pod, PodCondition
from kstate.control import endpoints, gc, nodelifecycle, replication
from kstate.control.commands import DeleteIfGone
from kstate.node import podsync
from kstate.verify.engine import EngineConfig
from kstate.verify.stateful.fuzz import FuzzOutcome, run_fuzz
from kstate.verify.stateful.machine import ClusterMachine

#: Programs per seed and rules per program: what CI may spend on one bug and seed.
EXAMPLES = 60
STEPS = 20
SEEDS = (1, 2)


# --------------------------------------------------------------------------- the bugs


def without_expectations(view: replication.ReplicationView, now: float,
                         settings: replication.ReplicationSettings) -> list[Any]:
    """The replication controller as if it never remembered its own creations."""
    return replication.reconcile(attrs.evolve(view, expectation=None), now, settings)


def evicting_in_full_disruption(view: nodelifecycle.NodeLifecycleView, now: float,
                                settings: nodelifecycle.NodeLifecycleSettings) -> list[Any]:
    """The node lifecycle controller without Kubernetes' "whole cluster down" rule."""
    return nodelifecycle.reconcile(view, now,
                                   attrs.evolve(settings, spare_full_disruption=False))


def _as_ready(pod: Pod) -> Pod:
    others = tuple(c for c in pod.status.conditions if c.type != "Ready")
    ready = PodCondition(type="Ready", status="True")
    return attrs.evolve(pod, status=attrs.evolve(pod.status, conditions=(*others, ready)))


def not_ready_as_ready(view: endpoints.EndpointsView, now: float) -> list[Any]:
    """The endpoints controller reading every pod as ready (its readiness ignored)."""
    return endpoints.reconcile(
        attrs.evolve(view, pods=tuple(_as_ready(p) for p in view.pods)), now)


def gc_owner_by_name(view: gc.GCView, now: float, settings: gc.GCSettings) -> list[Any]:
    """The garbage collector confirming an owner's absence by name only: an owner
    deleted and created again under the same name looks alive to it."""
    return [attrs.evolve(c, gone=attrs.evolve(c.gone, uid=""))
            if isinstance(c, DeleteIfGone) and c.gone.kind != "Node" else c
            for c in gc.reconcile(view, now, settings)]


def agent_ignores_deletion(view: podsync.PodSyncView) -> podsync.PodSyncView:
    """A node agent that does not see a pod's deletion timestamp: it keeps the pod's
    containers running, and the pod never finishes terminating."""
    pod = view.pod
    if pod is None or not pod.metadata.deletion_timestamp:
        return view
    meta = attrs.evolve(pod.metadata, deletion_timestamp="",
                        deletion_grace_period_seconds=None)
    return attrs.evolve(view, pod=attrs.evolve(pod, metadata=meta))


# --------------------------------------------------------------------------- machines


class RcWithoutExpectations(ClusterMachine):
    def config(self, seed: int) -> EngineConfig:
        return attrs.evolve(super().config(seed), replication_fn=without_expectations)


class EvictionInFullDisruption(ClusterMachine):
    def config(self, seed: int) -> EngineConfig:
        return attrs.evolve(super().config(seed), nodelifecycle_fn=evicting_in_full_disruption)


class EndpointsNotReadyAsReady(ClusterMachine):
    def config(self, seed: int) -> EngineConfig:
        return attrs.evolve(super().config(seed),
                            reconcilers={"endpoints": not_ready_as_ready})


class GcOwnerByName(ClusterMachine):
    def config(self, seed: int) -> EngineConfig:
        return attrs.evolve(super().config(seed), reconcilers={"gc": gc_owner_by_name})


class AgentIgnoresDeletion(ClusterMachine):
    def config(self, seed: int) -> EngineConfig:
        return attrs.evolve(super().config(seed), agent_view_fn=agent_ignores_deletion)


#: machine -> what the failure must say (a piece of the violated invariant's sentence)
BUGS: dict[type[ClusterMachine], str] = {
    RcWithoutExpectations: "above its replicas",
    EvictionInFullDisruption: "while every node looked down",
    EndpointsNotReadyAsReady: "the endpoints controller is idle on a current cache",
    GcOwnerByName: "would still act",
    AgentIgnoresDeletion: "Terminating on",
}


def fuzz(machine: type[ClusterMachine], seed: int, database: Path) -> FuzzOutcome:
    return run_fuzz("fake", examples=EXAMPLES, steps=STEPS, seed=seed, database=database,
                    machine=machine)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("machine", list(BUGS), ids=lambda m: m.__name__)
def test_the_fuzz_finds_the_seeded_bug(machine: type[ClusterMachine], seed: int,
                                       tmp_path: Path) -> None:
    outcome = fuzz(machine, seed, tmp_path / "db")
    print(outcome.text())
    assert outcome.failed, f"{machine.__name__} not found: {outcome.text()}"
    assert BUGS[machine] in outcome.error, outcome.text()
    assert f"from {__name__} import {machine.__name__}" in outcome.text()
    assert "state.boot(seed=" in outcome.program
