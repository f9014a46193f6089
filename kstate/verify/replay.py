"""``kstate verify --replay TRACE.json``: a model checker counterexample, on the engine.

Where it sits: ``kstate.verify``, between the checker's output and the live engine
(``kstate.verify.engine``). The checker says "this sequence of actions breaks property
P" about the *model*; a replay asks whether the *engine* — the real API core, controller
manager, scheduler and node agents, on fake runtimes and a fake clock — does the same.

1. **Read** a ``kstate verify --json`` result (schema ``kstate.verify/result@1``) or a
   file with one trace (``{"property": ..., "trace": [...], "scenario": ...}`` or a bare
   list of steps). The violated property's trace is taken (the first failed property
   with a trace). A malformed document is a ``ModelError`` naming the field.
2. **Find the scenario**: the document's ``scenario`` (the scenario's YAML mapping, or a
   path to it, relative to the trace file), else the scenario file named like the
   result's ``model`` in the trace file's directory, ``./specs/scenarios`` or the
   project's ``specs/scenarios``. (``kstate verify --json`` writes ``model`` = the
   scenario's name; embedding ``"scenario": <path>`` in that output would make every
   result self-contained — see docs/stateful.md.)
3. **Rebuild the initial cluster** in a *driven* engine: the scenario's nodes registered
   and Ready, its RCs and Services created, every cache current; components follow the
   store but act only when a step tells them to, and each component's watch holds back
   events up to the scenario's lag (``watch_lag`` for the controller manager), released
   one by one by ``Deliver`` steps — the model's bounded staleness, on the real informers.
4. **Map each action** onto the engine: ``Sync(rc)`` -> ``manager.sync_rc``,
   ``Endpoints(svc)`` -> ``sync_endpoints``, ``NodeLifecycle`` / ``GC`` -> their passes,
   ``Schedule(pod[, node])`` -> the scheduler's decision (or the model's tie-break) and
   binding, ``Kubelet(node, pod)`` -> that agent's ``sync_pod``, ``NodeReady(node)`` ->
   its status report, ``Deliver(watcher, kind)`` -> release one held event, ``Tick`` ->
   the clock to the step's ``now`` (leases renewed, as the model does), faults and the
   user's steps -> the engine's fault and user operations. Pod names differ (the model
   counts, the API server draws random suffixes), so pods are paired by owner and
   creation order.
5. **Judge**: after every step the violated property is evaluated on the live engine
   (safety), or, for a liveness property, after the whole trace (and its cycle) the
   engine is let run on its own from the store and must settle (it reproduces the
   violation if it does not). Each step's report says what the engine did and where its
   state differs from the model's.

A step of the model may do less than the engine's call (a model ``Kubelet`` step stops
at the pod worker's first write; ``sync_pod`` runs to rest): a replay is faithful to the
order of decisions and to what every component could see, not to every intermediate
state — the step reports show where the two part.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from kstate.api.frozen import FrozenDict
from kstate.api.helpers import controller_of, get_condition
from kstate.api.lifecycle import DRAINING_ANNOTATION, node_state, pod_state, rc_state
from kstate.api.meta import KubeObject, ObjectMeta
from kstate.api.objects import Endpoints, Node, Pod, ReplicationController, Service
from kstate.control import nodelifecycle, replication
from kstate.control.commands import Bind
from kstate.control.pods import is_active
from kstate.control.scheduler import SchedulingView, commands_for, decide
from kstate.errors import ModelError, NotFound
from kstate.node import podsync
from kstate.runtime.base import POD_NAME
from kstate.verify.checker import INIT, Kind, Step
from kstate.verify.checker.results import SCHEMA, steps_from_json
from kstate.verify.engine import Engine, EngineConfig, Fresh, fresh_decisions
from kstate.verify.system import Scenario, load_scenario, parse_scenario
from kstate.verify.system.properties import LIBRARY

ReplicationFn = Callable[..., list[Any]]

#: Properties judged after the whole trace, once the engine has run on its own.
LIVENESS = frozenset({"converges", "endpoints_converge", "no_orphans"})
_ACTION = re.compile(r"^(?P<name>[A-Za-z]+)(?:\((?P<args>.*)\))?$")


# --------------------------------------------------------------------------- reading


@attrs.frozen
class TraceDoc:
    """A counterexample to replay: the property, its steps, and the scenario."""

    property: str
    kind: str
    steps: tuple[Step, ...]
    cycle: tuple[Step, ...]
    scenario: Scenario
    source: str = ""


def load_trace(path: str | Path) -> TraceDoc:
    """Read a result or trace file (see the module docstring); ``ModelError`` naming
    the field for anything malformed."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ModelError(f"cannot read trace file: {exc.strerror or exc}", model=str(p),
                         field="$") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"not JSON: {exc}", model=str(p), field="$") from None
    try:
        return parse_trace(data, base=p.parent, source=str(p))
    except ModelError as err:
        raise ModelError(str(err), model=str(p)) from None


def parse_trace(data: Any, *, base: Path = Path("."), source: str = "") -> TraceDoc:
    """A ``TraceDoc`` from a parsed document."""
    if isinstance(data, list):
        data = {"trace": data}
    if not isinstance(data, Mapping):
        raise ModelError("expected a kstate verify --json result, or an object with a "
                         "'trace' (or a list of steps)", field="$")
    if "properties" in data:
        if data.get("schema") != SCHEMA:
            raise ModelError(f"expected schema {SCHEMA!r}, got {data.get('schema')!r}",
                             field="schema")
        chosen = _failed_property(data["properties"])
        where = f"properties[{chosen[0]}]"
        prop = chosen[1]
        name, kind = prop.get("name"), prop.get("kind", "always")
        trace_field, cycle = prop.get("trace"), prop.get("cycle", [])
        model = data.get("model")
    else:
        where = ""
        name, kind = data.get("property", ""), data.get("kind", "")
        trace_field, cycle = data.get("trace"), data.get("cycle", [])
        model = data.get("model")
    prefix = f"{where}." if where else ""
    if not isinstance(trace_field, list) or not trace_field:
        raise ModelError("must be a non-empty list of steps", field=f"{prefix}trace")
    if not isinstance(cycle, list):
        raise ModelError("must be a list of steps", field=f"{prefix}cycle")
    steps = steps_from_json(trace_field, f"{prefix}trace")
    cycle_steps = steps_from_json(cycle, f"{prefix}cycle")
    if steps[0].action != INIT:
        raise ModelError(f"the first step must be {INIT!r}, not {steps[0].action!r}",
                         field=f"{prefix}trace[0].action")
    for i, step in enumerate((*steps, *cycle_steps)):
        if not isinstance(step.state, Mapping) or not isinstance(step.state.get("now"),
                                                                  int | float):
            where_step = f"{prefix}trace[{i}]" if i < len(steps) else \
                f"{prefix}cycle[{i - len(steps)}]"
            raise ModelError("a step's state must be an object with a numeric 'now'",
                             field=f"{where_step}.state")
        if i and not _ACTION.match(step.action):
            raise ModelError(f"unreadable action {step.action!r}",
                             field=f"{prefix}trace[{i}].action")
    scenario = _scenario(data, model, base)
    if not isinstance(name, str) or not name:
        name = scenario.properties[0] if len(scenario.properties) == 1 else ""
        if not name:
            raise ModelError("which property does this trace violate? give 'property'",
                             field="property")
    if name not in LIBRARY:
        raise ModelError(f"unknown property {name!r}; the library has: "
                         f"{', '.join(LIBRARY)}", field=f"{prefix}name" if where
                         else "property")
    if not isinstance(kind, str):
        raise ModelError("must be a string", field=f"{prefix}kind")
    return TraceDoc(name, kind or ("converges" if name in LIVENESS else "always"),
                    steps, cycle_steps, scenario, source)


def _failed_property(props: Any) -> tuple[int, Mapping[str, Any]]:
    if not isinstance(props, list):
        raise ModelError("must be a list", field="properties")
    for i, prop in enumerate(props):
        if not isinstance(prop, Mapping):
            raise ModelError("must be an object", field=f"properties[{i}]")
        if prop.get("verdict") == "violated" and prop.get("trace"):
            return i, prop
    raise ModelError("no property of this result is violated with a trace: nothing to "
                     "replay", field="properties")


def scenario_dirs(base: Path) -> list[Path]:
    """Where a result's ``model`` name is looked up as ``<name>.yaml``."""
    project = Path(__file__).resolve().parents[2] / "specs" / "scenarios"
    return [base, Path.cwd() / "specs" / "scenarios", project]


def _scenario(data: Mapping[str, Any], model: Any, base: Path) -> Scenario:
    given = data.get("scenario")
    if isinstance(given, Mapping):
        return parse_scenario(dict(given), default_name=str(model or "scenario"))
    if isinstance(given, str):
        path = Path(given)
        return load_scenario(path if path.is_absolute() else base / path)
    if given is not None:
        raise ModelError("must be a scenario mapping or a path to one", field="scenario")
    if not isinstance(model, str) or not model:
        raise ModelError("cannot tell which scenario this trace is from: give 'scenario' "
                         "(a path or the scenario itself) or 'model'", field="scenario")
    for folder in scenario_dirs(base):
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{model}{suffix}"
            if candidate.is_file():
                return load_scenario(candidate)
    raise ModelError(f"no scenario file {model}.yaml found (looked in "
                     f"{', '.join(str(d) for d in scenario_dirs(base))}); add "
                     "'scenario': 'path/to/it.yaml' to the document", field="model")


# --------------------------------------------------------------------------- outcome


@attrs.frozen
class StepReport:
    index: int
    action: str
    did: str  # what the engine was asked to do, and what came of it
    differences: tuple[str, ...] = ()  # model state vs engine state after the step
    violations: tuple[str, ...] = ()  # the property, judged on the engine


@attrs.frozen
class ReplayOutcome:
    """Whether the engine reproduces the model's violation, and how each step went."""

    property: str
    scenario: str
    reproduced: bool
    verdict: str
    steps: tuple[StepReport, ...] = ()

    def text(self) -> str:
        lines = [f"replay of the {self.property} counterexample of scenario "
                 f"{self.scenario!r} on the engine ({len(self.steps)} steps)"]
        for step in self.steps:
            lines.append(f"{step.index:>3}. {step.action}")
            lines.append(f"       engine: {step.did}")
            lines.extend(f"       differs from the model: {d}" for d in step.differences)
            lines.extend(f"       VIOLATED: {v}" for v in step.violations)
        lines.append("")
        lines.append(("REPRODUCED: " if self.reproduced else "not reproduced: ")
                     + self.verdict)
        return "\n".join(lines)


def replay_file(path: str | Path, *, replication_fn: ReplicationFn | None = None,
                nodelifecycle_fn: ReplicationFn | None = None) -> ReplayOutcome:
    """Replay the counterexample in ``path`` on a fresh in-process engine."""
    doc = load_trace(path)
    return asyncio.run(replay(doc, replication_fn=replication_fn,
                              nodelifecycle_fn=nodelifecycle_fn))


async def replay(doc: TraceDoc, *, replication_fn: ReplicationFn | None = None,
                 nodelifecycle_fn: ReplicationFn | None = None) -> ReplayOutcome:
    """Replay ``doc`` (see the module docstring). ``replication_fn`` /
    ``nodelifecycle_fn`` swap the engine's reconcilers, as the checker's model was given
    them (a seeded bug)."""
    replayer = _Replayer(doc, replication_fn, nodelifecycle_fn)
    await replayer.start()
    try:
        return await replayer.run()
    finally:
        await replayer.engine.stop()


# --------------------------------------------------------------------------- replaying


def _args(action: str) -> tuple[str, list[str]]:
    m = _ACTION.match(action)
    if m is None:
        raise ModelError(f"unreadable action {action!r}", field="action")
    raw = m.group("args")
    return m.group("name"), [a.strip() for a in raw.split(",")] if raw else []


def _seq(name: str) -> tuple[int, str]:
    head, _, tail = name.rpartition("-")
    return (int(tail), head) if tail.isdigit() else (1 << 30, name)


class _Replayer:
    def __init__(self, doc: TraceDoc, replication_fn: ReplicationFn | None,
                 nodelifecycle_fn: ReplicationFn | None) -> None:
        self.doc = doc
        sc = doc.scenario
        settings = sc.settings
        from kstate.control.manager import ManagerSettings

        manager = ManagerSettings(replication=settings.replication,
                                  node_lifecycle=settings.node_lifecycle)
        self.engine = Engine(EngineConfig(
            node_names=sc.nodes, seed=0, autonomous=False, manager=manager,
            backoff=settings.backoff, replication_fn=replication_fn,
            nodelifecycle_fn=nodelifecycle_fn,
            lags=FrozenDict({"controller-manager": settings.watch_lag,
                             "scheduler": settings.scheduler_lag,
                             "node": settings.kubelet_lag})))
        self.names: dict[str, str] = {}  # model pod name -> engine pod name
        self.reports: list[StepReport] = []
        self.violated: list[str] = []

    # ------------------------------------------------------------------ setup

    async def start(self) -> None:
        engine = self.engine
        await engine.start()
        client = engine.client
        for obj in self._initial_objects():
            await client.create(obj)
        await engine.drain()
        # The model starts with every cache current: deliver whatever the creations
        # queued, so the components begin from the store as it is.
        for channel in self._channels():
            for kind in ("ReplicationController", "Service", "Endpoints", "Pod", "Node",
                         "Lease"):
                while channel.deliver(kind):
                    pass
        await engine.drain()

    def _initial_objects(self) -> list[KubeObject]:
        world = self.doc.scenario.initial_world()
        out: list[KubeObject] = []
        for obj in world.store.values():
            if isinstance(obj, ReplicationController):
                out.append(attrs.evolve(obj, metadata=_fresh_meta(obj.metadata),
                                        status=type(obj.status)()))
            elif isinstance(obj, Service):
                out.append(attrs.evolve(obj, metadata=_fresh_meta(obj.metadata),
                                        spec=attrs.evolve(obj.spec, cluster_ip="",
                                                          cluster_ips=()),
                                        status=type(obj.status)()))
        return out

    def _channels(self) -> list[Any]:
        e = self.engine
        out = [c for c in (e.manager_channel, e.scheduler_channel) if c is not None]
        return out + [n.channel for n in e.nodes.values()]

    # ------------------------------------------------------------------ steps

    async def run(self) -> ReplayOutcome:
        doc = self.doc
        liveness = doc.property in LIVENESS or _is_liveness(doc.kind)
        steps = [*doc.steps[1:], *doc.cycle]
        self._pair(doc.steps[0].state)
        for index, step in enumerate(steps, start=1):
            before = await self._snapshot()
            did = await self._do(step)
            await self.engine.drain()
            self._pair(step.state)
            differences = tuple(await self._differences(step.state))
            violations = () if liveness else tuple(await self._judge(step, before))
            self.violated += violations
            self.reports.append(StepReport(index, step.action, did, differences, violations))
        if liveness:
            return await self._judge_liveness()
        if self.violated:
            return self._outcome(True, f"{doc.property} is violated on the engine too: "
                                 f"{self.violated[0]}")
        return self._outcome(False, f"{doc.property} held on the engine at every step")

    def _outcome(self, reproduced: bool, verdict: str) -> ReplayOutcome:
        return ReplayOutcome(self.doc.property, self.doc.scenario.name, reproduced, verdict,
                             tuple(self.reports))

    async def _do(self, step: Step) -> str:
        name, args = _args(step.action)
        handler = getattr(self, f"_do_{name.lower()}", None)
        if handler is None:
            raise ModelError(f"no engine operation for action {name!r}", field="action")
        try:
            return str(await handler(step, *args))
        except (TypeError, IndexError, KeyError):
            raise ModelError(f"cannot replay {step.action!r}: unexpected arguments",
                             field="action") from None

    def _pod(self, model_name: str) -> str:
        if model_name.startswith("uid-"):
            model_name = model_name[len("uid-"):]
        engine_name = self.names.get(model_name)
        if engine_name is None:
            raise ModelError(f"the trace names pod {model_name!r}, which the engine never "
                             "created", field="action")
        return engine_name

    async def _pod_obj(self, model_name: str) -> Pod | None:
        try:
            return await self.engine.client.get(Pod, self._pod(model_name), "default")
        except NotFound:
            return None

    # -- controllers

    async def _do_sync(self, step: Step, rc: str) -> str:
        manager = self.engine.manager
        assert manager is not None
        before = {p.metadata.name for p in await self.engine.objects(Pod)}
        result = await manager.sync_rc(f"default/{rc}")
        after = {p.metadata.name for p in await self.engine.objects(Pod)}
        created = sorted(after - before)
        return (f"manager.sync_rc(default/{rc}) -> {_outcomes(result.outcomes)}"
                + (f"; created {', '.join(created)}" if created else ""))

    async def _do_endpoints(self, step: Step, svc: str) -> str:
        manager = self.engine.manager
        assert manager is not None
        result = await manager.sync_endpoints(f"default/{svc}")
        return f"manager.sync_endpoints(default/{svc}) -> {_outcomes(result.outcomes)}"

    async def _do_nodelifecycle(self, step: Step) -> str:
        assert self.engine.manager is not None
        result = await self.engine.manager.node_lifecycle_pass()
        return f"manager.node_lifecycle_pass() -> {_outcomes(result.outcomes)}"

    async def _do_gc(self, step: Step) -> str:
        assert self.engine.manager is not None
        result = await self.engine.manager.gc_pass()
        return f"manager.gc_pass() -> {_outcomes(result.outcomes)}"

    async def _do_schedule(self, step: Step, pod: str, node: str = "") -> str:
        scheduler = self.engine.scheduler
        assert scheduler is not None
        name = self._pod(pod)
        cached = scheduler.pods.get(f"default/{name}")
        if cached is None:
            return f"scheduler: pod {name} is not in its cache; nothing to do"
        now = self.engine.clock.now()
        view = SchedulingView(cached, scheduler.snapshot)
        decision = decide(view, scheduler.settings)
        commands = commands_for(view, decision, now)
        if node:  # the model explored one of several equally good nodes: take it too
            commands = [attrs.evolve(c, node=node) if isinstance(c, Bind) else c
                        for c in commands]
        result = await scheduler.executor.run(commands)
        where = next((c.node for c in commands if isinstance(c, Bind)), "")
        return (f"scheduler: {decision.outcome} {name}" + (f" to {where}" if where else "")
                + f" -> {_outcomes(result.outcomes)}")

    async def _do_kubelet(self, step: Step, node: str, pod: str) -> str:
        agent = self.engine.nodes[node].agent
        name = self._pod(pod)
        uid = next((u for u, p in agent._by_uid.items() if p.metadata.name == name), "")
        if not uid:
            obj = await self._pod_obj(pod)
            uid = obj.metadata.uid if obj is not None else ""
        if not uid:
            uid = next((c.pod_uid for c in await self.engine.runtime_of(node).list_containers()
                        if c.labels.get("io.kstate.pod.name") == name), "")
        if not uid:
            return f"agent {node}: no pod {name} to sync"
        # The model's step is the pod worker's rounds up to and including its next store
        # write (``SystemModel._pod_worker``): run the agent's own rounds that far, not
        # to rest as ``sync_pod`` would.
        rounds = 0
        for _ in range(8):
            now = self.engine.clock.now()
            view = await agent.view(uid)
            commands = podsync.sync(view, now, agent.options.backoff)
            if all(isinstance(c, podsync.RequeueAt) for c in commands):
                break
            rounds += 1
            await agent._execute(uid, view, commands, now)
            if any(isinstance(c, podsync.WriteStatus | podsync.FinishDelete)
                   for c in commands):
                break
        return f"agent {node}: {rounds} pod worker round(s) for {name}"

    async def _do_nodeready(self, step: Step, node: str) -> str:
        await self.engine.nodes[node].agent.report_status()
        return f"agent {node}.report_status()"

    # -- watches and time

    async def _do_deliver(self, step: Step, watcher: str, kind: str) -> str:
        engine = self.engine
        channel = {"cm": engine.manager_channel,
                   "scheduler": engine.scheduler_channel}.get(watcher)
        if channel is None and watcher in engine.nodes:
            channel = engine.nodes[watcher].channel
        if channel is None:
            raise ModelError(f"no watcher {watcher!r}", field="action")
        delivered = channel.deliver(kind)
        return (f"{watcher}: one held {kind} event delivered" if delivered else
                f"{watcher}: no {kind} event held (the engine's watch had delivered it)")

    async def _do_tick(self, step: Step) -> str:
        engine = self.engine
        target = float(step.state["now"])
        jump = max(0.0, target - engine.clock.now())
        engine.clock.advance(jump)
        await engine.drain()
        renewed = []
        for name, node in engine.nodes.items():
            if engine.reachable(name):
                await node.agent.renew_lease()
                renewed.append(name)
        await engine.drain()
        # As in the model, heartbeats arrive as time passes: every cache has them.
        if engine.manager_channel is not None:
            while engine.manager_channel.deliver("Lease"):
                pass
        return (f"clock +{jump:g}s; leases renewed: {', '.join(renewed) or 'none'}")

    # -- faults

    async def _do_crash(self, step: Step, node: str, container: str) -> str:
        uid, _, rest = container.partition("/")
        cname = rest.split("/")[0]
        name = self._pod(uid)
        for c in (await self.engine.containers()).get(node, []):
            if c.labels.get("io.kstate.pod.name") == name and c.name == cname:
                await self.engine.crash(node, c.id)
                return f"crashed container {cname} of {name} on {node}"
        return f"no running container {cname} of {name} on {node}"

    async def _do_partition(self, step: Step, node: str) -> str:
        self.engine.partition(node)
        return f"{node} cut off"

    async def _do_heal(self, step: Step, node: str) -> str:
        await self.engine.heal(node)
        return f"{node} reconnected"

    async def _do_restartcontrollermanager(self, step: Step) -> str:
        await self.engine.restart_controller_manager()
        return "controller manager restarted from the store"

    # -- the user's script

    async def _do_scale(self, step: Step, rc: str, replicas: str) -> str:
        await self.engine.client.scale(ReplicationController, rc, int(replicas), "default")
        return f"scaled {rc} to {replicas}"

    async def _do_deletepod(self, step: Step, pod: str) -> str:
        name = self._pod(pod)
        await self.engine.client.delete(Pod, name, "default")
        return f"deleted pod {name}"

    async def _do_deleterc(self, step: Step, rc: str, policy: str) -> str:
        await self.engine.client.delete(ReplicationController, rc, "default",
                                        propagation_policy=policy)
        return f"deleted rc {rc} ({policy})"

    async def _do_cordon(self, step: Step, node: str) -> str:
        return await self._mark(node, draining=False)

    async def _do_drain(self, step: Step, node: str) -> str:
        return await self._mark(node, draining=True)

    async def _mark(self, name: str, draining: bool) -> str:
        client = self.engine.client
        node = await client.get(Node, name)
        annotations = node.metadata.annotations
        if draining:
            annotations = annotations.set(DRAINING_ANNOTATION, "true")
        await client.update(attrs.evolve(
            node, metadata=attrs.evolve(node.metadata, annotations=annotations),
            spec=attrs.evolve(node.spec, unschedulable=True)))
        return f"{'drained' if draining else 'cordoned'} {name}"

    # ------------------------------------------------------------------ comparing

    def _pair(self, state: Mapping[str, Any]) -> None:
        """Pair the model's new pods with the engine's, by owner and creation order."""
        model_new: dict[str, list[str]] = {}
        for line in state.get("pods", []):
            parts = str(line).split()
            if not parts or parts[0] in self.names:
                continue
            owner = next((p[len("owner="):] for p in parts if p.startswith("owner=")), "-")
            model_new.setdefault(owner, []).append(parts[0])
        if not model_new:
            return
        created = self.engine.history.created
        taken = set(self.names.values())
        engine_new: dict[str, list[tuple[int, str]]] = {}
        for pod in self._last_pods:
            if pod.metadata.name in taken:
                continue
            ref = controller_of(pod)
            owner = ref.name if ref is not None else "-"
            engine_new.setdefault(owner, []).append(
                (created.get(pod.metadata.uid, 1 << 60), pod.metadata.name))
        for owner, names in model_new.items():
            theirs = [n for _, n in sorted(engine_new.get(owner, []))]
            for model_name, engine_name in zip(sorted(names, key=_seq), theirs, strict=False):
                self.names[model_name] = engine_name

    _last_pods: tuple[Pod, ...] = ()

    async def _snapshot(self) -> dict[str, Any]:
        pods = await self.engine.objects(Pod)
        self._last_pods = tuple(pods)
        return {"pods": pods, "nodes": await self.engine.objects(Node)}

    async def _differences(self, state: Mapping[str, Any]) -> list[str]:
        engine = self.engine
        now = engine.clock.now()
        pods = await engine.objects(Pod)
        self._last_pods = tuple(pods)
        self._pair(state)
        back = {v: k for k, v in self.names.items()}
        mine = {_pod_line(p, now, back) for p in pods}
        theirs = {str(line) for line in state.get("pods", [])}
        rcs = {_rc_line(rc) for rc in await engine.objects(ReplicationController)}
        nodes = {_node_line(n) for n in await engine.objects(Node)}
        endpoints = {_endpoints_line(e, back) for e in await engine.objects(Endpoints)}
        running = {f"{node} {back.get(c.labels.get(POD_NAME, ''), '?')}/{c.name}/{c.attempt}"
                   for node, cs in (await engine.containers()).items() for c in cs}
        model_running = {f"{node} {cid.removeprefix('uid-')}"
                         for node, ids in dict(state.get("running", {})).items()
                         for cid in ids}
        out = []
        for what, model, real in (("pods", theirs, mine),
                                  ("rcs", {str(x) for x in state.get("rcs", [])}, rcs),
                                  ("nodes", {str(x) for x in state.get("nodes", [])}, nodes),
                                  ("endpoints", {str(x) for x in state.get("endpoints", [])},
                                   endpoints),
                                  ("running containers", model_running, running)):
            only_model, only_engine = sorted(model - real), sorted(real - model)
            if only_model or only_engine:
                out.append(f"{what}: model {only_model or '[]'}, engine {only_engine or '[]'}")
        if abs(float(state.get("now", now)) - now) > 1e-6:
            out.append(f"time: model {state['now']:.0f}, engine {now:.0f}")
        return out

    # ------------------------------------------------------------------ judging

    async def _judge(self, step: Step, before: Mapping[str, Any]) -> list[str]:
        from kstate.verify.stateful import checks

        engine = self.engine
        prop = self.doc.property
        if prop == "never_overcreates":
            return await self._overcreated(step, before)
        if prop == "legal_transitions":
            return [v for v in checks.legal_history(engine)
                    if "illegal" in v and v not in self.violated]
        if prop == "bound_once":
            return [v for v in engine.history.violations
                    if "moved from node" in v and v not in self.violated]
        if prop == "finished_never_restarts":
            pods = await engine.objects(Pod)
            return [*await checks.finished_stay_finished(engine, pods),
                    *(v for v in engine.history.violations
                      if "went back" in v and v not in self.violated)]
        if prop == "no_pod_on_two_nodes":
            return await checks.one_node_per_pod(engine)
        if prop == "no_mass_eviction":
            return await self._mass_eviction(step, before)
        if prop == "endpoints_ready_only":
            return await self._endpoints_ready_only()
        if prop == "single_source_of_truth":
            return [v for v in await checks.memory_only_brakes(engine)
                    if v.startswith("replication")]
        return []

    async def _overcreated(self, step: Step, before: Mapping[str, Any]) -> list[str]:
        name, args = _args(step.action)
        if name != "Sync" or not args:
            return []
        manager = self.engine.manager
        assert manager is not None
        rc = manager.rcs.get(f"default/{args[0]}")
        if rc is None:
            return []
        old = {p.metadata.uid for p in before["pods"]}
        pods = [p for p in await self.engine.objects(Pod) if is_active(p)
                and (ref := controller_of(p)) is not None and ref.uid == rc.metadata.uid]
        created = [p for p in pods if p.metadata.uid not in old]
        want = replication.desired_replicas(rc)
        if created and len(pods) > want:
            return [f"after Sync({args[0]}) rc {args[0]} has {len(pods)} active pods, more "
                    f"than the {want} replicas the controller acted on"]
        return []

    async def _mass_eviction(self, step: Step, before: Mapping[str, Any]) -> list[str]:
        if not nodelifecycle.full_disruption(before["nodes"]):
            return []
        was = {p.metadata.uid for p in before["pods"] if not p.metadata.deletion_timestamp}
        evicted = [p.metadata.name for p in await self.engine.objects(Pod)
                   if p.metadata.uid in was and p.metadata.deletion_timestamp]
        gone = was - {p.metadata.uid for p in await self.engine.objects(Pod)}
        if evicted or gone:
            return [f"pods evicted while every node looked down: "
                    f"{', '.join(evicted) or len(gone)}"]
        return []

    async def _endpoints_ready_only(self) -> list[str]:
        engine = self.engine
        channel = engine.manager_channel
        if channel is not None and any(channel.pending(k) for k in ("Pod", "Service",
                                                                    "Endpoints")):
            return []  # the controller has not seen everything yet
        decisions = fresh_decisions(engine, await Fresh.read(engine), node_lifecycle=False)
        if any(k.startswith("endpoints/") for k in decisions):
            return []  # it still has writes to make
        return await engine.endpoints_mismatch()

    async def _judge_liveness(self) -> ReplayOutcome:
        engine = self.engine
        for name in engine.node_names:
            if not engine.reachable(name):
                await engine.heal(name)
        await engine.go_autonomous()
        settled = await engine.settle()
        prop = self.doc.property
        if settled.converged:
            return self._outcome(False, f"{prop}: after the trace, the engine running on its "
                                 f"own settled in {settled.elapsed:.0f} s of fake time")
        unmet = "; ".join(settled.unmet[:5])
        return self._outcome(True, f"{prop}: after the trace the engine did not settle "
                             f"within {settled.elapsed:.0f} s of fake time: {unmet}")


def _is_liveness(kind: str) -> bool:
    try:
        return Kind(kind).liveness
    except ValueError:
        return False


def _fresh_meta(meta: ObjectMeta) -> ObjectMeta:
    return ObjectMeta(name=meta.name, namespace=meta.namespace, labels=meta.labels,
                      annotations=meta.annotations)


def _outcomes(outcomes: Sequence[str]) -> str:
    if not outcomes:
        return "nothing to do"
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return ", ".join(f"{n} {o}" for o, n in counts.items())


def _pod_line(p: Pod, now: float, model_names: Mapping[str, str]) -> str:
    """A pod as the model's ``describe`` writes it (``render._pod``), named as the
    model names it."""
    owner = p.metadata.owner_references[0].name if p.metadata.owner_references else "-"
    state = pod_state(p, now)
    scheduled = get_condition(p.status.conditions, "PodScheduled")
    if state == "Pending" and scheduled is not None and scheduled.reason:
        state += f"({scheduled.reason})"
    name = model_names.get(p.metadata.name, p.metadata.name)
    return f"{name} {state} node={p.spec.node_name or '-'} owner={owner}"


def _rc_line(rc: ReplicationController) -> str:
    desired = 1 if rc.spec.replicas is None else rc.spec.replicas
    return (f"{rc.metadata.name} {rc_state(rc)} desired={desired} "
            f"current={rc.status.replicas} ready={rc.status.ready_replicas}")


def _endpoints_line(e: Endpoints, model_names: Mapping[str, str]) -> str:
    def names(addresses: Any) -> str:
        return ",".join(sorted(model_names.get(a.target_ref.name, a.target_ref.name)
                               for s in e.subsets for a in addresses(s) if a.target_ref))
    return (f"{e.metadata.name} ready=[{names(lambda s: s.addresses)}] "
            f"notReady=[{names(lambda s: s.not_ready_addresses)}]")


def _node_line(n: Node) -> str:
    ready = get_condition(n.status.conditions, "Ready")
    taints = ",".join(t.key.rsplit("/", 1)[-1] for t in n.spec.taints) or "-"
    return (f"{n.metadata.name} {node_state(n)} ready={ready.status if ready else '-'} "
            f"taints={taints}")


__all__ = ["LIVENESS", "ReplayOutcome", "StepReport", "TraceDoc", "load_trace",
           "parse_trace", "replay", "replay_file", "scenario_dirs"]
