"""Seeded bugs for ``kstate fuzz``: the live engine with one plausible broken component
must fail an invariant within a stated budget, on a fixed seed.

The mechanism is the checker's (tests/verify/test_seeded_bugs.py): a decision swapped
for a broken variant through the engine's own seam (``EngineConfig.replication_fn``,
``nodelifecycle_fn``, ``reconcilers``, ``agent_view_fn``) — never a patched module. Each
bug is a ``ClusterMachine`` subclass whose engine carries it, and
``kstate fuzz --runtime fake --machine tests.verify.test_fuzz_seeded_bugs:<Bug>`` —
the same rules, the same shrinking and printing — must report it, with its shrunk
program (``pytest -s`` shows it).

Budget (docs/stateful.md): ``EXAMPLES`` programs of at most ``STEPS`` rules, shrinking
included, on each bug's seed. The runs are independent processes, so they are started
together (``fuzz_runs``) and each test awaits its own: pytest runs one test at a time,
and a run is one busy core, so one after the other they would leave the rest idle.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from kstate.api.objects import Pod, PodCondition
from kstate.control import endpoints, gc, nodelifecycle, replication
from kstate.control.commands import DeleteIfGone
from kstate.node import podsync
from kstate.verify.engine import EngineConfig
from kstate.verify.stateful.machine import ClusterMachine
from tests.conftest import Started

ROOT = Path(__file__).resolve().parents[2]
#: Programs and rules per program: what CI may spend on one bug (on its seed, below).
EXAMPLES = 40
STEPS = 8


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


@attrs.frozen
class Seeded:
    """A seeded bug, the seed on which ``kstate fuzz`` must find it, and a piece of the
    violated invariant's sentence the failure must print."""

    machine: type[ClusterMachine]
    seed: int
    says: str


BUGS = (
    Seeded(RcWithoutExpectations, 1, "above its replicas"),
    Seeded(EvictionInFullDisruption, 2, "while every node looked down"),
    Seeded(EndpointsNotReadyAsReady, 1, "endpoints default/api: ["),
    Seeded(GcOwnerByName, 2, "a fresh gc would still act"),
    Seeded(AgentIgnoresDeletion, 1, "still Killing on"),
)


def kstate_fuzz(*args: str) -> Started:
    """``kstate fuzz`` started in its own process, with the hash seed it pins for itself
    (set iteration order is part of a run: the same seed must give the same programs)."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(ROOT))
    return Started([sys.executable, "-m", "kstate.cli", "fuzz", *args], cwd=ROOT, env=env)


def bug_run(bug: Seeded, database: Path) -> Started:
    return kstate_fuzz("--runtime", "fake", "--machine", f"{__name__}:{bug.machine.__name__}",
                       "--examples", str(EXAMPLES), "--steps", str(STEPS),
                       "--seed", str(bug.seed), "--database", str(database))


@pytest.fixture(scope="module")
def fuzz_runs(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Started]]:
    """The run of every seeded bug this session selected, all started at once."""
    selected = {item.callspec.params["bug"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")
                and "bug" in item.callspec.params}
    runs = {bug.machine.__name__: bug_run(bug, tmp_path_factory.mktemp("fuzz-db"))
            for bug in BUGS if bug in selected}
    try:
        yield runs
    finally:
        for run in runs.values():  # a test that failed early leaves the others' runs
            run.stop()


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.machine.__name__)
def test_kstate_fuzz_finds_the_seeded_bug(bug: Seeded, fuzz_runs: dict[str, Started]) -> None:
    name = bug.machine.__name__
    run = fuzz_runs[name].result()
    print(run.stdout)  # the failure and its shrunk program (pytest -s shows them)
    assert run.returncode == 1, f"{name} not found:\n{run.stdout}{run.stderr[-2000:]}"
    assert "FAILED at example" in run.stdout.splitlines()[0]
    assert bug.says in run.stdout
    program = run.stdout.split("`python -i`):\n\n", 1)[1].split("\n\n", 1)[0]
    assert program.startswith(f"from {__name__} import {name}\nstate = {name}()\n"
                              "state.boot("), program


def test_a_machine_that_is_not_a_cluster_machine_is_bad_usage(tmp_path: Path) -> None:
    cases = [("nowhere", "want MODULE:CLASS"),
             ("tests.verify.nothing_here:X", "cannot import"),
             (f"{__name__}:Seeded", "no subclass of ClusterMachine named Seeded")]
    started = [kstate_fuzz("--machine", spec, "--database", str(tmp_path)) for spec, _ in cases]
    runs = [run.result() for run in started]  # together: each is mostly start-up
    for run, (_, says) in zip(runs, cases, strict=True):
        assert run.returncode == 2 and says in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
