"""Real process faults: SIGKILL the all-in-one daemon in the middle of RC work, on Docker
and on containerd.

Why: the architecture's promise is that the store is the single source of truth — every
component can die at any instant and be rebuilt from the store alone (informers relist,
the RC controller recounts, the node agent adopts its containers by their labels, the
garbage collector resumes a cascading delete). The model checker explores crash/restart
as an abstract move; this test does it to the real processes, real SQLite/etcd files and
real containers, where a lost write, a forgotten container or a half-done deletion would
show.

How: ``kstate up`` runs as a child process; each *round* sends a few RC writes (create,
scale, delete with Background or Foreground propagation) at random moments and SIGKILLs
the daemon's process group at a random moment of a short window — during the scale-up,
the scale-down or the cascading deletion the writes started. The daemon is started again
and, within a deadline, the cluster must converge to exactly what was acknowledged:

* every write answered 2xx before the kill is in the store (``spec.replicas`` equals the
  last acknowledged value; a deleted RC stays deleted); a write the kill cut off may have
  gone either way, and the restart's answer is then taken as the truth;
* for each RC, exactly ``replicas`` pods, Ready, on the node — none stuck Terminating,
  none left over from a deleted RC;
* on the engine, exactly one running sandbox and one running app container per pod, and no
  container of this test's node that belongs to no pod (no orphan).

Checked at every poll, converged or not: never more active pods for an RC than it was
asked for since the last convergence, never two running containers for one pod (no
duplicates).

The schedule comes from a seeded RNG (the seed is printed; ``KSTATE_FAULT_SEED`` replays
it — the kill lands at the same offset, though the daemon's own timing varies). Runs: 21
daemon kills on the default SQLite store (7 rounds each of scale-up, scale-down and RC
deletion); 5 daemon kills on a three-member etcd cluster, one of whose members is
SIGKILLed mid-round and restarted rounds later.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kstate.store.etcdproc import EtcdCluster, log_tail
from tests.conftest import require_binary
from tests.e2e.conftest import RUNTIMES, prepare_images, remove_node_containers, require_runtime
from tests.e2e.faults_helpers import (
    Acknowledged,
    DaemonProcess,
    PodMonitor,
    Write,
    calm_round,
    fault_rng,
    faulty_round,
    replicas_of,
)
from tests.store.conftest import require_etcd_client

#: Rounds of each kind (scale-up, scale-down, RC deletion) on SQLite: 3 x 7 = 21 kills.
ROUNDS = 7
WEB = "web"


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """The real runtime the daemon's node runs on (Docker, then containerd)."""
    require_runtime(request.param)
    prepare_images(request.param)
    return str(request.param)


@pytest.fixture
def node_name(runtime: str) -> Iterator[str]:
    """A node name of this test's own; every container labelled with it goes at the end."""
    node = f"faults-{uuid.uuid4().hex[:8]}"
    try:
        yield node
    finally:
        remove_node_containers(node, runtime)


@pytest.fixture
def make_daemon(node_name: str, runtime: str,
                tmp_path: Path) -> Iterator[Callable[[str], DaemonProcess]]:
    """Start ``kstate up`` on the test's node (``store``: a URL, or "" for SQLite); every
    daemon started is killed at the end, before the node's containers are removed."""
    started: list[DaemonProcess] = []

    def make(store: str = "") -> DaemonProcess:
        daemon = DaemonProcess(tmp_path / f"daemon{len(started)}", node_name, store, runtime)
        started.append(daemon)
        daemon.data_dir.mkdir()
        daemon.start()
        return daemon

    try:
        yield make
    finally:
        for daemon in started:
            daemon.kill(count=False)


# ----------------------------------------------------------------------------- the rounds


def scale_up(model: Acknowledged, rng: random.Random, i: int) -> list[Write]:
    """Grow ``web`` (in one or two steps) and create the RC the deletion round removes."""
    low = replicas_of(model, WEB)
    first = rng.randint(low + 1, low + 3)
    writes = [Write("scale", WEB, first), Write("create", f"doomed-{i}", 2)]
    if rng.random() < 0.5:
        writes.append(Write("scale", WEB, first + 1))
    rng.shuffle(writes)
    return writes


def scale_down(model: Acknowledged, rng: random.Random, i: int) -> list[Write]:
    """Shrink ``web`` to 0 or 1, sometimes through an intermediate size."""
    high = replicas_of(model, WEB)
    final = rng.randint(0, min(1, max(high - 1, 0)))
    writes = [Write("scale", WEB, final)]
    if high - 1 > final and rng.random() < 0.5:
        writes.insert(0, Write("scale", WEB, rng.randint(final + 1, high - 1)))
    return writes


def rc_deletion(model: Acknowledged, rng: random.Random, i: int) -> list[Write]:
    """Delete the RC the scale-up round created, with its pods (cascading); if a kill cut
    its creation off, create it here and delete it while its pods start."""
    doomed = f"doomed-{i}"
    delete = Write("delete", doomed, propagation=rng.choice(["Background", "Foreground"]))
    return [delete] if doomed in model.live() else [Write("create", doomed, 2), delete]


KINDS = {"scale-up": scale_up, "scale-down": scale_down, "rc-deletion": rc_deletion}


def report(daemon: DaemonProcess, model: Acknowledged, monitor: PodMonitor,
           seed: int) -> None:
    starts = daemon.start_seconds
    print(f"seed {seed}: {daemon.kills} daemon kills, {model.acked} writes acknowledged, "
          f"{len(model.in_doubt)} cut off by a kill, {monitor.events} pod events checked; "
          f"start to 'up' max {max(starts):.2f}s mean {sum(starts) / len(starts):.2f}s")
    assert monitor.events > 0, f"the pod watch saw nothing ({monitor.last_error})"
    assert not model.violations, "\n".join(model.violations)


# ------------------------------------------------------------------------------- the tests


async def test_sigkill_during_scale_up_scale_down_and_rc_deletion(
        make_daemon: Callable[[str], DaemonProcess], node_name: str) -> None:
    seed, rng = fault_rng()
    daemon = make_daemon("")
    model = Acknowledged(run=node_name)
    async with PodMonitor(daemon, model) as monitor:
        await calm_round(daemon, model, [Write("create", WEB, 1)])
        for i in range(ROUNDS):
            for kind, plan in KINDS.items():
                line = await faulty_round(daemon, model, plan(model, rng, i), rng)
                print(f"round {i} {kind}: {line}")
    report(daemon, model, monitor, seed)
    assert daemon.kills == ROUNDS * len(KINDS)


@pytest.fixture
def etcd3() -> Iterator[EtcdCluster]:
    """A private three-member etcd cluster on loopback (closed after the daemon is)."""
    require_binary("etcd")
    require_etcd_client()
    cluster = EtcdCluster(size=3).start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.mark.etcd
async def test_sigkill_on_a_three_member_etcd_with_a_member_killed(
        etcd3: EtcdCluster, make_daemon: Callable[[str], DaemonProcess],
        node_name: str) -> None:
    seed, rng = fault_rng()
    # The first endpoint is the one the daemon's store dials first: kill that one.
    member = etcd3.members[0]

    async def kill_member() -> None:
        await asyncio.sleep(rng.uniform(0.0, 2.0))  # the fault schedule
        member.kill()

    async def restart_member() -> None:
        await asyncio.sleep(rng.uniform(0.0, 2.0))  # the fault schedule
        await asyncio.to_thread(etcd3.restart, member)

    daemon = make_daemon(etcd3.url)
    model = Acknowledged(run=node_name)
    plan = [("scale-up", scale_up, None), ("scale-down", scale_down, kill_member),
            ("rc-deletion", rc_deletion, None), ("scale-up", scale_up, restart_member),
            ("scale-down", scale_down, None)]
    try:
        async with PodMonitor(daemon, model) as monitor:
            await calm_round(daemon, model, [Write("create", WEB, 1)])
            for i, (kind, writes, also) in enumerate(plan):
                line = await faulty_round(daemon, model, writes(model, rng, i // 3), rng,
                                          also=also)
                print(f"round {i} {kind}{' + etcd ' + also.__name__ if also else ''}: "
                      f"{line}")
    except BaseException:
        print(log_tail(etcd3))
        raise
    report(daemon, model, monitor, seed)
    assert daemon.kills == len(plan)
    assert member.running and all(m.healthy() for m in etcd3.members)
