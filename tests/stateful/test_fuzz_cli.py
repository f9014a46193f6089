"""``kstate fuzz``: a clean run, a failing run (a bug planted in one invariant check),
its minimal program and its memory, ``--seed`` reproduction, honest progress, bad usage.

The planted bug: ``checks.one_node_per_pod`` also reports every RC there is — a
"violation" Hypothesis finds in a few programs and shrinks to a boot with the workload. Budgets
are tiny (and the seeds ones that shrink quickly): the whole file runs in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kstate import cli
from kstate.api.objects import ReplicationController
from kstate.errors import UsageError
from kstate.verify.engine import Engine
from kstate.verify.stateful import checks
from kstate.verify.stateful.fuzz import Progress, Tally, run_fuzz
from kstate.verify.stateful.machine import ClusterMachine, budget

PLANTED = "planted: rc web exists"


@pytest.fixture
def planted_bug(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = checks.one_node_per_pod

    async def one_node_per_pod_and_a_planted_bug(engine: Engine) -> list[str]:
        return [*await real(engine),
                *(f"planted: rc {rc.metadata.name} exists"
                  for rc in await engine.objects(ReplicationController))]

    monkeypatch.setattr(checks, "one_node_per_pod", one_node_per_pod_and_a_planted_bug)
    yield


def fuzz(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["fuzz", *args])
    out, err = capsys.readouterr()
    return code, out, err


def progress_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if re.match(r"(example|shrinking) ", line)]


def test_a_clean_run_reports_its_examples_and_steps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = fuzz(capsys, "--examples", "4", "--steps", "6", "--seed", "3",
                          "--database", str(tmp_path / "db"))
    assert code == 0, out + err
    match = re.fullmatch(r"kstate fuzz \(fake\): 4 examples( \(\d+ discarded\))?, (\d+) steps "
                         r"in [\d.]+s: every invariant held\n", out)
    assert match, out
    assert 0 < int(match.group(2)) <= 4 * 6
    lines = progress_lines(err)
    assert lines[0].startswith("example 1/4  0 steps")
    # Honest: never more examples than asked, however many programs Hypothesis runs.
    assert all(int(re.match(r"example (\d+)/4", line).group(1)) <= 4  # type: ignore[union-attr]
               for line in lines)


def test_a_failure_prints_its_minimal_program_saves_it_and_is_replayed_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], planted_bug: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "db"
    code, out, err = fuzz(capsys, "--examples", "10", "--steps", "8", "--seed", "2",
                          "--database", str(database))
    assert code == 1, out + err
    head = out.splitlines()[0]
    assert re.fullmatch(r"kstate fuzz \(fake\): FAILED at example \d+, shrunk in \d+ more "
                        r"runs; \d+ steps in [\d.]+s", head), head
    assert f"AssertionError: planted: rc api exists; {PLANTED}" in out
    program = out.split("`python -i`):\n\n", 1)[1].split("\n\n", 1)[0]
    assert program.splitlines() == [  # shrunk to the smallest: a boot with the workload
        "from kstate.verify.stateful import ClusterMachine", "state = ClusterMachine()",
        "state.boot(seed=0, workload=True, lag='', lag_seconds=5.0)",
        "state.every_step_invariant()", "state.teardown()"]
    assert f"Saved in {database}" in out
    assert "Reproduce this run: kstate fuzz --runtime fake --steps 8 --seed 2" in out
    assert any(p.is_file() for p in database.rglob("*"))
    assert any(line.startswith("shrinking the failure of example")
               for line in progress_lines(err))

    # The program replays the failure as it reads (then stop its engine, as teardown
    # does when Hypothesis runs it: an engine left running is torn down by the garbage
    # collector at a random moment later).
    replayed: dict[str, Any] = {}
    with pytest.raises(AssertionError, match=PLANTED):
        exec(program, replayed)  # the program kstate fuzz just printed
    replayed["state"].teardown()

    # The next run (another seed) replays the saved failure first: example 1 fails.
    code, out, _ = fuzz(capsys, "--examples", "10", "--steps", "8", "--seed", "3",
                        "--database", str(database))
    assert code == 1
    assert out.startswith("kstate fuzz (fake): FAILED at example 1, shrunk in ")
    assert "state.boot(seed=0, workload=True, lag='', lag_seconds=5.0)" in out

    # Once the bug is fixed, the saved failure passes and the run is clean.
    monkeypatch.undo()
    code, out, _ = fuzz(capsys, "--examples", "2", "--steps", "8", "--seed", "3",
                        "--database", str(database))
    assert code == 0 and "every invariant held" in out


def _without_event_suffix(key: str) -> str:
    return key.rsplit(".", 1)[0] if key.startswith("/registry/events/") else key


def _programs_of(seed: int, database: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> list[tuple[tuple[str, int], ...]]:
    """What each program of a run left in the store (keys and revisions): the engine is
    deterministic for a program, so equal lists mean the same programs ran."""
    seen: list[tuple[tuple[str, int], ...]] = []
    teardown = ClusterMachine.teardown

    def recording_teardown(machine: ClusterMachine) -> None:
        if machine.engine is not None and machine.engine._running:
            page = machine.run(machine.e.store.list("/registry/"))
            # Event names end in a random suffix (the executor's, by design): compare
            # them by what they are about.
            seen.append(tuple(sorted((_without_event_suffix(kv.key), kv.mod_revision)
                                     for kv in page.items)))
        teardown(machine)

    monkeypatch.setattr(ClusterMachine, "teardown", recording_teardown)
    outcome = run_fuzz("fake", 5, 6, seed, database)
    monkeypatch.setattr(ClusterMachine, "teardown", teardown)
    assert not outcome.failed, outcome.text()
    return seen


def test_the_same_seed_runs_the_same_programs(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    first = _programs_of(7, tmp_path / "a", monkeypatch)
    again = _programs_of(7, tmp_path / "b", monkeypatch)
    other = _programs_of(8, tmp_path / "c", monkeypatch)
    assert len(first) >= 5 and first == again
    assert other != first


@pytest.mark.parametrize(("args", "message"), [
    (["--examples", "0"], "--examples and --steps must be at least 1"),
    (["--steps", "0"], "--examples and --steps must be at least 1"),
    (["--steps", "-3"], "--examples and --steps must be at least 1 (got 50 examples of -3"),
    (["--profile", "nightly"],
     "--profile: unknown profile 'nightly'; choose one of dev, ci, long"),
    (["--profile", "ci", "--examples", "0"], "must be at least 1 (got 0 examples of 30"),
    (["--seed", "-1"], "--seed must not be negative"),
    (["--runtime", "podman"], "invalid choice: 'podman'"),
    (["--examples", "many"], "invalid int value: 'many'"),
])
def test_bad_usage_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], message: str) -> None:
    code, out, err = fuzz(capsys, *args, "--database", str(tmp_path))
    assert code == 2, out + err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing ran, nothing saved


def test_an_unknown_profile_in_the_environment_is_a_usage_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KSTATE_HYPOTHESIS_PROFILE", "nightly")
    with pytest.raises(UsageError, match="KSTATE_HYPOTHESIS_PROFILE: unknown profile "
                                         "'nightly'; choose one of dev, ci, long"):
        budget("fake")


def test_docker_unavailable_is_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aiodocker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    code, out, err = fuzz(capsys, "--runtime", "docker", "--database", str(tmp_path / "db"))
    assert code == 2, out + err
    assert err.startswith("error: --runtime docker: the Docker engine is not reachable")
    assert len(err.strip().splitlines()) == 1


class _Ended:
    """A finished program as ``Tally`` sees it."""

    def __init__(self, outcome: str, steps: int = 2) -> None:
        self.outcome, self.steps = outcome, steps


def test_progress_counts_valid_examples_discards_and_shrinking_apart() -> None:
    tally = Tally(asked=3)

    def start(previous: Any = None) -> str:
        if previous is not None:
            tally.ended(previous)
        tally.runs += 1
        return Progress(tally, 1.0).line()

    assert start() == "example 1/3  0 steps  1.0s"
    assert start(_Ended("discarded")) == "example 1/3 (1 discarded)  2 steps  1.0s"
    assert start(_Ended("passed")) == "example 2/3 (1 discarded)  4 steps  1.0s"
    assert start(_Ended("failed")) == "shrinking the failure of example 2: run 1  6 steps  1.0s"
    assert start(_Ended("failed")) == "shrinking the failure of example 2: run 2  8 steps  1.0s"
    assert (tally.valid, tally.discarded, tally.failed_at) == (2, 1, 2)
