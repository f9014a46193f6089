"""``--mode api``: scheduler_perf's SchedulingBasic through the API server.

Where it sits: beside the ``inprocess`` mode of ``bench/scheduler`` (its ``__main__``
builds the same nodes and pods and hands them here). Where ``inprocess`` times the pure
scheduling functions alone, this mode runs what the all-in-one daemon runs:

    load generator --create--> ApiCore (admission, store) --watch--> Scheduler informers
      -> SchedulingQueue -> decide -> assume -> Binding --> ApiCore.bind (store CAS)
      --watch--> a separate "bound pods" watch (the measurement) and the scheduler's cache

all in one process and one asyncio loop, over ``LocalClient`` (the daemon's in-process
client: the same admission path as HTTP, no HTTP), on a fresh store per repetition:
``sqlite`` (the daemon's default; WAL, fsync per commit, group commit) or ``memory``.

Workload (as ``inprocess``): ``--nodes`` Node objects (4 CPU / 32 GiB / 110 pods) created
through the API, ``--init-pods`` pods created already bound (round-robin, not measured),
then the measured pods created through the API by ``--clients`` concurrent creators
*while the scheduler runs* (scheduler_perf's shape: its ``createPods`` op and the
scheduler run together) — or, with ``--create before``, all created first and the
scheduler started afterwards (isolates scheduling + binding from admission of creates).

Figures: average throughput = measured pods / (first create sent -> last binding
acknowledged by the API server); scheduler_perf's SchedulingThroughput statistics over
1-second windows of acknowledged bindings (p50, p99, min; the partial last window
excluded); the scheduling cycle (``Scheduler.schedule_one``: pop -> decide -> assume ->
binding sent, the wait for a free binding slot excluded) p50/p99; a binding's round trip
(sent -> acknowledged) p50/p99; create acknowledged -> binding acknowledged p50/p99.
Where the time goes: the loop's wall time split by instrumented phases, and a cProfile
of one run grouped into decision, bind path, creates (the load generator), informers
and store.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import cell
from bench.report import percentile as pct
from kstate.api.client import LocalClient
from kstate.api.helpers import with_spec
from kstate.api.objects import Node, Pod
from kstate.api.server.core import ApiCore
from kstate.clock import RealClock
from kstate.control import scheduler as sched_fns
from kstate.control.commands import Bind
from kstate.control.informer import Informer
from kstate.control.scheduler import SchedulerSettings
from kstate.control.schedulerd import Scheduler
from kstate.errors import Compacted
from kstate.store import open_store
from kstate.store.watch import DEFAULT_WATCH_BUFFER

ANCHOR = 680.0
SECTION = "## Through the API server (`--mode api`)"
#: one section per ``--create`` mode, so that both can stand in the same document
SECTIONS = {"during": SECTION,
            "before": "## Through the API server, pods created first (`--mode api --create "
                      "before`)"}
#: a hand-written section about the api figures, kept (like them) when the in-process
#: report rewrites the document
READING = "## Reading the API figures"


@dataclass
class ApiRun:
    store: str
    seconds: float  #: first create sent -> last binding acknowledged
    cpu_seconds: float  #: the whole process (creators, API, store threads, scheduler)
    pods: int
    windows: list[float]  #: bindings acknowledged per full 1-s window
    cycles: list[float]  #: Scheduler.schedule_one durations, slot wait excluded (s)
    binds: list[float]  #: binding round trips: Executor.run of a Bind (s)
    e2e: list[float]  #: create acknowledged -> binding acknowledged (s)
    phases: dict[str, float]  #: instrumented wall seconds
    creates_done: float  #: seconds from start until the last create was acknowledged
    setup_seconds: float
    start_seconds: float  #: Scheduler.start(): informers listed and synced
    watch_relists: int  #: the measuring watch fell behind and relisted
    informer_relists: int  #: the scheduler's informers relisted (watch expired)
    watch_lag: list[float]  #: binding acknowledged -> seen by the measuring watch (s)
    per_node: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def throughput(self) -> float:
        return self.pods / self.seconds


def _open(store: str, work: Path) -> Any:
    return open_store("memory://" if store == "memory" else f"sqlite:///{work}/state.db")


async def _bounded(calls: Iterable[Callable[[], Awaitable[Any]]], limit: int) -> None:
    """Run the calls with at most ``limit`` in flight."""
    it = iter(calls)

    async def worker() -> None:
        for call in it:
            await call()

    await asyncio.gather(*(worker() for _ in range(limit)))


class _Instrument:
    """Wall time of the scheduler's phases, by wrapping (restored on exit)."""

    def __init__(self) -> None:
        self.phases = dict.fromkeys(("decide", "slot", "bind", "informer"), 0.0)
        self.cycles: list[float] = []
        self.binds: list[float] = []
        self.lists = 0
        self._saved: list[tuple[Any, str, Any]] = []

    def _patch(self, owner: Any, name: str, new: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    def __enter__(self) -> _Instrument:
        clock = time.perf_counter
        phases = self.phases
        decide = sched_fns.decide

        def timed_decide(*a: Any, **k: Any) -> Any:
            t = clock()
            try:
                return decide(*a, **k)
            finally:
                phases["decide"] += clock() - t

        self._patch(sched_fns, "decide", timed_decide)
        for name in ("_on_pod", "_on_node"):
            original = getattr(Scheduler, name)

            def handler(self_: Any, *a: Any, _f: Any = original, **k: Any) -> Any:
                t = clock()
                try:
                    return _f(self_, *a, **k)
                finally:
                    phases["informer"] += clock() - t

            self._patch(Scheduler, name, handler)
        one = Scheduler.schedule_one
        cycles = self.cycles
        slot = Scheduler._binding_slot
        waited = [0.0]

        async def binding_slot(self_: Any) -> None:
            t = clock()
            await slot(self_)
            waited[0] = clock() - t
            phases["slot"] += waited[0]

        async def schedule_one(self_: Any) -> bool:
            t = clock()
            placed = await one(self_)
            if placed:
                cycles.append(clock() - t - waited[0])
            return placed

        self._patch(Scheduler, "_binding_slot", binding_slot)
        self._patch(Scheduler, "schedule_one", schedule_one)
        original_list = Informer._list

        async def counted_list(self_: Any) -> None:
            self.lists += 1
            await original_list(self_)

        self._patch(Informer, "_list", counted_list)
        return self

    def instrument_executor(self, scheduler: Scheduler) -> None:
        run = scheduler.executor.run
        clock = time.perf_counter
        phases = self.phases
        binds = self.binds

        async def timed(commands: Any, *a: Any, **k: Any) -> Any:
            t = clock()
            try:
                return await run(commands, *a, **k)
            finally:
                if any(isinstance(c, Bind) for c in commands):
                    binds.append(clock() - t)
                    phases["bind"] += binds[-1]

        scheduler.executor.run = timed  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        for owner, name, value in reversed(self._saved):
            setattr(owner, name, value)


async def _run(nodes: Sequence[Node], init_pods: Sequence[Pod], pods: Sequence[Pod],
               settings: SchedulerSettings, store_kind: str, clients: int,
               create: str, profiler: cProfile.Profile | None = None) -> ApiRun:
    work = Path(tempfile.mkdtemp(prefix="kstate-bench-sched-"))
    setup_started = time.perf_counter()
    store = _open(store_kind, work)
    core = ApiCore(store, RealClock())
    await core.start()
    client = LocalClient(core)
    scheduler: Scheduler | None = None
    try:
        await _bounded((lambda n=n: client.create(n) for n in nodes), 32)  # type: ignore[misc]
        names = [n.metadata.name for n in nodes]
        await _bounded((lambda p=p, i=i: client.create(with_spec(p, node_name=names[
            i % len(names)])) for i, p in enumerate(init_pods)), 32)  # type: ignore[misc]
        measured = {p.metadata.name for p in pods}
        created_at: dict[str, float] = {}
        bound_at: dict[str, float] = {}
        per_node: collections.Counter[str] = collections.Counter()
        everything_bound = asyncio.Event()
        rv = (await client.list(Pod, limit=1)).resource_version
        clock = time.perf_counter

        relists = [0]

        def seen(pod: Pod) -> None:
            name = pod.metadata.name
            if pod.spec.node_name and name in measured and name not in bound_at:
                bound_at[name] = clock()
                per_node[pod.spec.node_name] += 1
                if len(bound_at) == len(measured):
                    everything_bound.set()

        async def watch_bound() -> None:
            revision = rv
            while not everything_bound.is_set():
                try:
                    async with client.watch(Pod, "", resource_version=revision) as w:
                        async for _kind, pod in w:
                            seen(pod)
                            if everything_bound.is_set():
                                return
                except Compacted:
                    # The watch fell a buffer's worth behind (a burst of writes in this
                    # same loop): relist and watch again, as an informer does. Counted.
                    relists[0] += 1
                    listing = await client.list(Pod, "")
                    for pod in listing.items:
                        seen(pod)
                    revision = listing.resource_version

        async def create_one(pod: Pod) -> None:
            await client.create(pod)
            created_at[pod.metadata.name] = clock()
            # An in-process create over the memory store never suspends: without this
            # the creators would run all their creates back to back and starve the
            # scheduler and the watches, which a remote client (network I/O) never does.
            await asyncio.sleep(0)

        # Bindings are timed when the API acknowledges them (stored): exact, and not
        # delayed by a watch that lags behind a burst of writes in this same loop.
        acked: dict[str, float] = {}
        plain_bind = client.bind

        async def timed_bind(pod: str, node: str, namespace: str = "default", *,
                             uid: str = "") -> None:
            await plain_bind(pod, node, namespace, uid=uid)
            if pod in measured:
                acked[pod] = clock()

        client.bind = timed_bind  # type: ignore[method-assign]
        watcher = asyncio.ensure_future(watch_bound())
        with _Instrument() as inst:
            if create == "before":
                await _bounded((lambda p=p: create_one(p) for p in pods), clients)  # type: ignore[misc]
            scheduler = Scheduler(client, RealClock(), settings)
            inst.instrument_executor(scheduler)
            t_start = clock()
            await scheduler.start()  # informers list and sync: nodes, init pods
            start_seconds = clock() - t_start
            setup_seconds = clock() - setup_started
            for key in inst.phases:
                inst.phases[key] = 0.0
            inst.cycles.clear()
            inst.binds.clear()
            inst.lists = 0
            cpu0 = time.process_time()
            if profiler is not None:
                profiler.enable()  # the measured window only: not the setup
            started = clock()
            if create == "before":
                for name in created_at:
                    created_at[name] = started
            creates_done = 0.0
            if create == "during":
                await _bounded((lambda p=p: create_one(p) for p in pods), clients)  # type: ignore[misc]
                creates_done = clock() - started
            await everything_bound.wait()  # the watch has seen every pod bound
            if profiler is not None:
                profiler.disable()
            ended = max(acked.values())
            cpu = time.process_time() - cpu0
            phases = dict(inst.phases)
            cycles = list(inst.cycles)
            binds = list(inst.binds)
            informer_relists = inst.lists
        await watcher
    finally:
        if scheduler is not None:
            await scheduler.stop()
        await core.close()
        await store.close()
        shutil.rmtree(work, ignore_errors=True)
    buckets = collections.Counter(int(t - started) for t in acked.values())
    full = int(ended - started)
    windows = [float(buckets[i]) for i in range(full)]
    e2e = [acked[n] - created_at[n] for n in acked]
    watch_lag = [bound_at[n] - acked[n] for n in acked if n in bound_at]
    return ApiRun(store_kind, ended - started, cpu, len(pods), windows, cycles, binds, e2e,
                  phases, creates_done, setup_seconds, start_seconds, relists[0],
                  informer_relists, watch_lag, per_node)


def run_api(nodes: Sequence[Node], init_pods: Sequence[Pod], pods: Sequence[Pod],
            settings: SchedulerSettings, store: str, clients: int, create: str,
            profiler: cProfile.Profile | None = None) -> ApiRun:
    return asyncio.run(_run(nodes, init_pods, pods, settings, store, clients, create,
                            profiler))


# --------------------------------------------------------------------------- profile

#: (label, function-name suffix in pstats "file:line(name)") — cumulative own-thread time
PROFILE_GROUPS = (
    ("scheduling decision (`decide` + `commands_for`)", ("control/scheduler.py", "decide")),
    ("snapshot assume (the assume cache)", ("scheduling/snapshot.py", "assume")),
    ("bind path (`ApiCore.bind`: admission, CAS write, watch fan-out)",
     ("server/core.py", "bind")),
    ("pod creates (`ApiCore.create`, the load generator)", ("server/core.py", "create")),
    ("scheduler's informer handler (`_on_pod`: snapshot, queue)",
     ("schedulerd.py", "_on_pod")),
    ("informers' watch loops (`Informer._watch`, handlers included)",
     ("control/informer.py", "_watch")),
)


def profile_api(nodes: Sequence[Node], init_pods: Sequence[Pod], pods: Sequence[Pod],
                settings: SchedulerSettings, store: str, clients: int, create: str,
                top: int = 22) -> tuple[list[str], float]:
    profiler = cProfile.Profile()
    run = run_api(nodes, init_pods, pods, settings, store, clients, create, profiler)
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    lines = [f"cProfile of one run (store {store}, {run.pods:,} pods; profiling slows "
             f"everything down: {run.throughput:,.0f} pods/s under the profiler, "
             f"{total:.1f} s of main-thread time in the measured window):", "",
             "| where (cumulative, main thread) | seconds | share | µs per pod |",
             "|---|---:|---:|---:|"]
    for label, (path, name) in PROFILE_GROUPS:
        cum = sum(v[3] for (f, _l, fn), v in raw.items() if f.endswith(path) and fn == name)
        lines.append(f"| {label} | {cum:.2f} | {cum / total:.0%} | "
                     f"{cum / run.pods * 1e6:,.0f} |")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    body = text[text.index("ncalls"):].rstrip().splitlines()
    root = str(Path.cwd()) + "/"
    lines += ["", "Top functions by own time:", "", "```",
              *(ln.replace(root, "") for ln in body), "```"]
    return lines, run.throughput


# --------------------------------------------------------------------------- report


HEADER = [
    "| workload | store | pods/s, average | / 680 | per-1-s window p50 | p99 | min "
    "| cycle p50 ms | cycle p99 ms | binding p50 ms | p99 ms | create->bound p50 ms | p99 ms "
    "| CPU s per 1,000 pods |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def row(name: str, store: str, runs: list[ApiRun]) -> str:
    tput = [r.throughput for r in runs]
    w50 = [pct(r.windows, 50) for r in runs if r.windows]
    w99 = [pct(r.windows, 99) for r in runs if r.windows]
    wmin = [min(r.windows) for r in runs if r.windows]
    c50 = [pct(r.cycles, 50) * 1e3 for r in runs]
    c99 = [pct(r.cycles, 99) * 1e3 for r in runs]
    b50 = [pct(r.binds, 50) * 1e3 for r in runs]
    b99 = [pct(r.binds, 99) * 1e3 for r in runs]
    e50 = [pct(r.e2e, 50) * 1e3 for r in runs]
    e99 = [pct(r.e2e, 99) * 1e3 for r in runs]
    cpu = [r.cpu_seconds / r.pods * 1000 for r in runs]
    return (f"| {name} | {store} | {cell(tput, ',.0f')} | "
            f"{statistics.median(tput) / ANCHOR:.2f}x | {cell(w50, ',.0f')} | "
            f"{cell(w99, ',.0f')} | {cell(wmin, ',.0f')} | {cell(c50, '.2f')} | "
            f"{cell(c99, '.2f')} | {cell(b50, ',.0f')} | {cell(b99, ',.0f')} | "
            f"{cell(e50, ',.0f')} | {cell(e99, ',.0f')} | "
            f"{cell(cpu, '.2f')} |")


def phase_lines(run: ApiRun) -> list[str]:
    total = run.seconds
    labels = {
        "decide": "decision: `decide` + `commands_for` (synchronous)",
        "slot": "the loop waiting for a free binding slot (all "
                "`bindings_in_flight` taken; other tasks run meanwhile)",
        "informer": "scheduler's informer handlers (`_on_pod`, `_on_node`)",
    }
    lines = ["| phase (wall, inside the measured window) | seconds | share | µs per pod |",
             "|---|---:|---:|---:|"]
    for key, label in labels.items():
        lines.append(f"| {label} | {run.phases[key]:.2f} | {run.phases[key] / total:.0%} | "
                     f"{run.phases[key] / run.pods * 1e6:,.0f} |")
    cycles = sum(run.cycles)
    lines.append(f"| all scheduling cycles (`schedule_one`, pop to binding sent, slot wait "
                 f"excluded) | {cycles:.2f} | {cycles / total:.0%} | "
                 f"{cycles / run.pods * 1e6:,.0f} |")
    bind = run.phases["bind"]
    lines += ["", f"Bindings run in the background: their round trips (`Executor.run` -> "
              f"`LocalClient.bind` -> `ApiCore.bind`, the `Scheduled` event included) add "
              f"up to {bind:.1f} s in the {total:.1f} s window, i.e. "
              f"{bind / total:.1f} bindings in flight on average."]
    return lines


def write_section(doc: Path, text: str, create: str = "during") -> None:
    """Replace this mode's section of ``doc`` (or append it), keeping everything else."""
    old = doc.read_text() if doc.exists() else ""
    section = SECTIONS[create]
    if section + "\n" in old:
        head, _, rest = old.partition(section + "\n")
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
        new = head + text.rstrip() + "\n" + ("\n" + tail if tail else "")
    else:
        new = old.rstrip() + "\n\n" + text.rstrip() + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new)


def existing_section(doc: Path) -> str:
    """The api mode's sections of ``doc`` as they stand ('' if none): the in-process
    report rewrites the file and puts them back."""
    if not doc.exists():
        return ""
    old = doc.read_text()
    kept = []
    for section in (*SECTIONS.values(), READING):
        if section + "\n" not in old:
            continue
        rest = section + "\n" + old.partition(section + "\n")[2]
        nxt = rest.find("\n## ", len(section))
        kept.append(rest if nxt < 0 else rest[:nxt + 1])
    return "\n".join(kept)


def render(command: str, info: dict[str, str], args: argparse.Namespace,
           table: list[str], phases: list[str], profile: list[str], typical: ApiRun,
           spread: int) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        SECTIONS[args.create], "",
        f"Generated by `bench/scheduler --mode api` on {now}. Re-run with:", "",
        f"    {command}", "",
        *(f"- {k}: {v}" for k, v in info.items()), "",
        "### Method", "",
        "- The real `kstate.control.schedulerd.Scheduler` (informers, assume cache,",
        "  scheduling queue, `Executor` posting `pods/<name>/binding`) over `LocalClient`",
        "  -> `ApiCore` — what the all-in-one daemon runs, minus HTTP — in one process and",
        "  one asyncio loop, on a fresh store per repetition. Stores: "
        + ", ".join(f"`{s}`" for s in args.store) + " (`sqlite`: the daemon's default,",
        "  WAL with an fsync per commit and group commit; `memory`: no disk).",
        f"- {args.nodes:,} Node objects and {args.init_pods:,} already-bound pods created",
        f"  through the API first (not measured); then {args.pods:,} pods created through",
        f"  the API by {args.clients} concurrent creators "
        + ("**while the scheduler runs** (scheduler_perf's shape)." if args.create ==
           "during" else "**before** the scheduler starts (the scheduler lists them)."),
        "- Measured from the first measured create sent to the last binding acknowledged",
        "  by the API server (stored); a separate watch on pods checks that every binding",
        "  is visible. *per-1-s window*: bindings acknowledged in each full second",
        "  (scheduler_perf's",
        "  SchedulingThroughput samples; p99 is the high side, as there; min shows",
        "  stalls); *cycle*: `Scheduler.schedule_one` from pop to the pod assumed and its",
        "  binding sent (bindings run in the background, at most `bindings_in_flight` =",
        "  64 at once; the wait for a free slot is excluded); *binding*: a binding's round",
        "  trip, sent to acknowledged (its `Scheduled` event included); *create->bound*:",
        "  a pod's create acknowledged to its binding",
        "  acknowledged; *CPU s per 1,000 pods*: the whole process (creators, API, store threads,",
        "  watchers, scheduler).",
        f"- Medians of {args.reps} repetitions (min..max beside them).", "",
        "### Results", "",
        f"Anchor: **{ANCHOR:.0f} pods/s** (scheduler_perf SchedulingBasic 5000Nodes_10000Pods",
        "threshold, whose figure includes the API server and etcd).", "",
        *table, "",
        f"- Placement (median run, first row): {len(typical.per_node):,} nodes used, at most "
        f"{spread} measured pods on one node.",
        (f"- Creates of the measured pods were all acknowledged after "
         f"{typical.creates_done:.1f} s of the {typical.seconds:.1f} s run (the creators "
         "and the scheduler share the loop and the 2 cores)." if args.create == "during"
         else f"- The measured pods were all created before the scheduler started; the "
         f"run (scheduler start excluded) took {typical.seconds:.1f} s."),
        f"- Binding acknowledged -> seen by the measuring watch (median run): p50 "
        f"{pct(typical.watch_lag, 50) * 1e3:,.0f} ms, p99 "
        f"{pct(typical.watch_lag, 99) * 1e3:,.0f} ms.",
        f"- Watches that fell {DEFAULT_WATCH_BUFFER:,} events behind and had to relist "
        f"(median run): the "
        f"measuring watch {typical.watch_relists}, the scheduler's informers "
        f"{typical.informer_relists}.",
        f"- Scheduler start-up (`Scheduler.start()`: its informers list {args.nodes:,} nodes "
        f"and the pods, and sync), not in the measured window: "
        f"{typical.start_seconds:.1f} s (median run).",
        "",
        "### Where the time goes", "",
        "Scheduler phases, wall time inside the measured window (median-throughput run of",
        "the first row):", "",
        *phases, "",
        *profile, "",
    ])
