"""``kstate verify --replay TRACE.json``: a model checker counterexample, on the engine.

Where it sits: ``kstate.verify``, between the checker's output and the live engine
(``kstate.verify.engine``). The checker says "this sequence of actions breaks property
P" about the *model*; a replay asks whether the *engine* — the real API core, controller
manager, scheduler and node agents, on fake runtimes and a fake clock — does the same.

1. **Read** a ``kstate verify --json`` result (schema ``kstate.verify/result@1``) or a
   file with one trace (``{"property": ..., "trace": [...], "scenario": ...}`` or a bare
   list of steps). The violated property's trace is taken (the first failed property
   with a trace). A malformed document is a ``ModelError`` naming the field
   (``properties[0].trace[3].action``), and so is an action the replay has no engine
   operation for (``ACTIONS``) or arguments it cannot follow.
2. **Find the scenario**: the one the caller gives (``kstate verify SCEN --replay F``),
   else the document's ``scenario`` (the scenario's YAML mapping, or a path to it,
   relative to the trace file or the current folder — ``kstate verify --json`` writes
   the scenario file's absolute path there), else the scenario file named like the
   result's ``model`` in the trace file's directory, ``./specs/scenarios`` or the
   project's ``specs/scenarios``.
3. **Rebuild the initial cluster** in a *driven* engine: the scenario's nodes registered
   and Ready, its RCs and Services created, every cache current; components follow the
   store but act only when a step tells them to, and each component's watch holds back
   events up to the scenario's lag (``watch_lag`` for the controller manager), released
   one by one by ``Deliver`` steps — the model's bounded staleness, on the real informers.
4. **Map each action** onto the engine: ``Sync(rc)`` -> ``manager.sync_rc``
   (``Sync(rc, a+b)``, a scale-down among pods of equal rank: its reconciler takes the
   choice of its own ``reconcile_choices`` that deletes a, then b),
   ``Endpoints(svc)`` -> ``sync_endpoints``, ``NodeLifecycle`` / ``GC`` -> their passes,
   ``Namespace(ns)`` -> ``sync_namespace`` (``NodeLifecycle(a+b)``, ``GC(a+b)``,
   ``Namespace(ns, a+b)``: the reconciler takes the choice of its module's
   ``reconcile_choices`` that writes a, then b — ``kstate.control.orders``),
   ``Schedule(pod[, node])`` -> the scheduler's decision (or the model's tie-break) and
   binding, ``Kubelet(node, pod)`` -> that agent's ``sync_pod``, ``NodeReady(node)`` ->
   its status report, ``Deliver(watcher, kind)`` -> release one held event, ``Tick`` ->
   the clock to the step's ``now`` (leases renewed, as the model does), faults and the
   user's steps -> the engine's fault and user operations. Pod names differ (the model
   counts, the API server draws random suffixes), so pods are paired by owner and
   creation order.
5. **Judge**: after every step the violated property is evaluated on the live engine
   (safety), or, for a liveness property, after the whole trace (and its cycle) the
   engine is let run on its own from the store and must settle with the property's goal
   met (it reproduces the violation if it does not: an RC whose pods can never be
   scheduled comes to rest, and does not converge). Each step's report says what the
   engine did and where its state differs from the model's. ``kstate verify --replay``
   exits 1 when the engine reproduces the violation, 0 when the property holds on it
   (as for a check: 1 means a property fails).

A step of the model may do less than the engine's call (a model ``Kubelet`` step stops
at the pod worker's first write; ``sync_pod`` runs to rest): a replay is faithful to the
order of decisions and to what every component could see, not to every intermediate
state — the step reports show where the two part.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import attrs

from kstate.api.frozen import FrozenDict
from kstate.api.helpers import controller_of, get_condition
from kstate.api.lifecycle import DRAINING_ANNOTATION, node_state, pod_state, rc_state
from kstate.api.meta import KubeObject, ObjectMeta
from kstate.api.objects import Endpoints, Namespace, Node, Pod, ReplicationController, Service
from kstate.api.writes import DEFAULT_NAMESPACES
from kstate.control import gc, namespace, nodelifecycle, orders, replication
from kstate.control.commands import Bind, Delete
from kstate.control.pods import is_active
from kstate.control.scheduler import SchedulingView, commands_for, decide
from kstate.errors import ModelError, NotFound
from kstate.node import podsync
from kstate.runtime.base import POD_NAME
from kstate.verify.checker import INIT, Kind, Step
from kstate.verify.checker.results import SCHEMA, steps_from_json
from kstate.verify.engine import Engine, EngineConfig, Fresh, fresh_decisions
from kstate.verify.system import Scenario, load_scenario, parse_scenario
from kstate.verify.system.properties import LIBRARY, endpoint_names, ready_matching

ReplicationFn = Callable[..., list[Any]]

#: Properties judged after the whole trace, once the engine has run on its own.
LIVENESS = frozenset({"converges", "endpoints_converge", "no_orphans",
                      "deletions_complete"})
_ACTION = re.compile(r"^(?P<name>[A-Za-z]+)(?:\((?P<args>.*)\))?$")
_KINDS = frozenset(k.value for k in Kind)


# --------------------------------------------------------------------------- reading


@attrs.frozen
class TraceDoc:
    """A counterexample to replay: the property, its steps, and the scenario.

    ``fields`` names, for every step after ``<init>`` (then every cycle step), where it
    sits in the document (``properties[0].trace[3]``), so an error met while replaying
    names the step at fault.
    """

    property: str
    kind: str
    steps: tuple[Step, ...]
    cycle: tuple[Step, ...]
    scenario: Scenario
    source: str = ""
    fields: tuple[str, ...] = ()


#: Model actions the replay has no engine operation for yet (a trace with one of them
#: is refused with a clear error naming the step).
NOT_REPLAYED = ("Reboot", "ApiOutage", "ApiBack", "ProbePass", "ProbeFail")


def load_trace(path: str | Path, *, scenario: str | Path | None = None) -> TraceDoc:
    """Read a result or trace file (see the module docstring); ``ModelError`` naming
    the field for anything malformed. ``scenario`` overrides the document's own."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ModelError(f"cannot read trace file: {exc.strerror or exc}", model=str(p)
                         ) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"not JSON: {exc}", model=str(p), field="$") from None
    try:
        return parse_trace(data, base=p.parent, source=str(p),
                           scenario=load_scenario(scenario) if scenario else None)
    except ModelError as err:
        raise _in_file(err, p) from None


def _in_file(err: ModelError, path: Path) -> ModelError:
    """``err`` located in the trace file ``path`` (its field kept)."""
    where = ": ".join(part for part in (err.model, err.field) if part)
    message = str(err).removeprefix(f"{where}: ") if where else str(err)
    model = str(path) if not err.model else f"{path} (scenario {err.model})"
    return ModelError(message, model=model, field=err.field)


def parse_trace(data: Any, *, base: Path = Path("."), source: str = "",
                scenario: Scenario | None = None) -> TraceDoc:
    """A ``TraceDoc`` from a parsed document (``scenario``: use it, not the document's)."""
    if isinstance(data, list):
        data = {"trace": data}
    if not isinstance(data, Mapping):
        raise ModelError("expected a kstate verify --json result, or an object with a "
                         "'trace' (or a list of steps)", field="$")
    if "properties" in data:  # a ``kstate verify --json`` result
        if data.get("schema") != SCHEMA:
            raise ModelError(f"expected schema {SCHEMA!r}, got {data.get('schema')!r}",
                             field="schema")
        index, prop = _failed_property(data["properties"])
        prefix = f"properties[{index}]."
        name_field = f"{prefix}name"
    else:  # one trace
        prop, prefix, name_field = data, "", "property"
    name = prop.get("name" if prefix else "property")
    kind = prop.get("kind", "")
    trace_field, cycle = prop.get("trace"), prop.get("cycle", [])
    if not isinstance(trace_field, list) or not trace_field:
        raise ModelError("must be a non-empty list of steps", field=f"{prefix}trace")
    if not isinstance(cycle, list):
        raise ModelError("must be a list of steps", field=f"{prefix}cycle")
    steps = steps_from_json(trace_field, f"{prefix}trace")
    cycle_steps = steps_from_json(cycle, f"{prefix}cycle")
    fields = ([f"{prefix}trace[{i}]" for i in range(len(steps))]
              + [f"{prefix}cycle[{i}]" for i in range(len(cycle_steps))])
    if steps[0].action != INIT:
        raise ModelError(f"the first step must be {INIT!r}, not {steps[0].action!r}",
                         field=f"{fields[0]}.action")
    for i, (step, where) in enumerate(zip((*steps, *cycle_steps), fields, strict=True)):
        now = step.state.get("now") if isinstance(step.state, Mapping) else None
        if isinstance(now, bool) or not isinstance(now, int | float):
            raise ModelError("a step's state must be an object with a numeric 'now'",
                             field=f"{where}.state")
        if i:
            _check_action(step.action, f"{where}.action")
    if scenario is None:
        scenario = _scenario(data, data.get("model"), base)
    if name is None or name == "":
        if len(scenario.properties) != 1:
            raise ModelError("which property does this trace violate? give it",
                             field=name_field)
        name = scenario.properties[0]
    if not isinstance(name, str) or name not in LIBRARY:
        raise ModelError(f"unknown property {name!r}; the library has: "
                         f"{', '.join(LIBRARY)}", field=name_field)
    if not isinstance(kind, str) or (kind and kind not in _KINDS):
        raise ModelError(f"unknown kind {kind!r}; one of: {', '.join(Kind)}",
                         field=f"{prefix}kind")
    kind = kind or (Kind.CONVERGES.value if name in LIVENESS else Kind.ALWAYS.value)
    return TraceDoc(name, kind, steps, cycle_steps, scenario, source, tuple(fields[1:]))


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


def _check_action(action: str, field: str) -> None:
    """An action the replay can map onto the engine, with the arguments it takes."""
    name, args = _args(action, field)
    arity = ACTIONS.get(name)
    if name in NOT_REPLAYED:
        raise ModelError(f"the replay cannot yet play {name!r} on the engine (faults it "
                         f"plays: {', '.join(sorted(ACTIONS))})", field=field)
    if arity is None:
        raise ModelError(f"unknown action {name!r}; known: {', '.join(sorted(ACTIONS))}",
                         field=field)
    least, most = arity
    if not least <= len(args) <= most:
        wanted = str(least) if least == most else f"{least} to {most}"
        raise ModelError(f"{name} takes {wanted} argument(s), got {len(args)}", field=field)


def scenario_dirs(base: Path) -> list[Path]:
    """Where a result's ``model`` name is looked up as ``<name>.yaml``."""
    project = Path(__file__).resolve().parents[2] / "specs" / "scenarios"
    return [base, Path.cwd() / "specs" / "scenarios", project]


def _scenario(data: Mapping[str, Any], model: Any, base: Path) -> Scenario:
    given = data.get("scenario")
    if isinstance(given, Mapping):
        try:
            return parse_scenario(dict(given), default_name=str(model or "scenario"))
        except ModelError as err:
            where = f"scenario.{err.field}" if err.field else "scenario"
            raise ModelError(str(err).removeprefix(f"{err.field}: "), field=where) from None
    if isinstance(given, str) and given:
        path = Path(given)
        for candidate in (path,) if path.is_absolute() else (base / path, path):
            if candidate.is_file():
                return load_scenario(candidate)
        raise ModelError(f"no scenario file {given!r} (relative paths are read from the "
                         "trace file's folder, then the current one)", field="scenario")
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
    """One replayed step: the model's action, what the engine did, how they differ."""

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

    def to_json(self) -> dict[str, Any]:
        """The outcome as JSON data (``kstate verify --replay ... --json``)."""
        return {"property": self.property, "scenario": self.scenario,
                "reproduced": self.reproduced, "verdict": self.verdict,
                "steps": [{"index": s.index, "action": s.action, "engine": s.did,
                           "differences": list(s.differences),
                           "violations": list(s.violations)} for s in self.steps]}

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


def replay_file(path: str | Path, *, scenario: str | Path | None = None,
                replication_fn: ReplicationFn | None = None,
                nodelifecycle_fn: ReplicationFn | None = None) -> ReplayOutcome:
    """Replay the counterexample in ``path`` on a fresh in-process engine (``scenario``:
    this scenario file, not the one the document names)."""
    doc = load_trace(path, scenario=scenario)
    try:
        return asyncio.run(replay(doc, replication_fn=replication_fn,
                                  nodelifecycle_fn=nodelifecycle_fn))
    except ModelError as err:  # a step the engine cannot follow
        raise _in_file(err, Path(path)) from None


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


def _args(action: str, field: str = "action") -> tuple[str, list[str]]:
    """``"Kubelet(node-1, web-0)"`` -> ``("Kubelet", ["node-1", "web-0"])``."""
    m = _ACTION.match(action)
    if m is None:
        raise ModelError(f"unreadable action {action!r}", field=field)
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
        #: where the scenario's workloads live (``namespace:``; else ``default``)
        self.namespace = self.doc.scenario.namespace or "default"
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
            for kind in ("Namespace", "ReplicationController", "Service", "Endpoints", "Pod",
                         "Node", "Lease"):
                while channel.deliver(kind):
                    pass
        await engine.drain()

    def _initial_objects(self) -> list[KubeObject]:
        world = self.doc.scenario.initial_world()
        out: list[KubeObject] = []
        for obj in world.store.values():
            if isinstance(obj, Namespace) and obj.metadata.name not in DEFAULT_NAMESPACES:
                out.append(attrs.evolve(obj, metadata=_fresh_meta(obj.metadata),
                                        spec=type(obj.spec)(), status=type(obj.status)()))
            elif isinstance(obj, ReplicationController):
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
        for index, (step, where) in enumerate(zip(steps, doc.fields, strict=True), start=1):
            before = await self._snapshot()
            try:
                did = await self._do(step)
            except ModelError as err:
                raise ModelError(f"{err}", field=f"{where}.action") from None
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
        """Run the engine operation of ``step`` (checked by ``_check_action`` when the
        document was read); what it did, in words."""
        name, args = _args(step.action)
        handler = getattr(self, f"_do_{name.lower()}")
        return str(await handler(step, *args))

    def _agent(self, node: str) -> Any:
        if node not in self.engine.nodes:
            raise ModelError(f"no node {node!r} in the scenario (nodes: "
                             f"{', '.join(self.engine.node_names)})")
        return self.engine.nodes[node].agent

    def _pod(self, model_name: str) -> str:
        if model_name.startswith("uid-"):
            model_name = model_name[len("uid-"):]
        engine_name = self.names.get(model_name)
        if engine_name is None:
            raise ModelError(f"the trace names pod {model_name!r}, which the engine never "
                             "created")
        return engine_name

    async def _pod_obj(self, model_name: str) -> Pod | None:
        try:
            return await self.engine.client.get(Pod, self._pod(model_name), self.namespace)
        except NotFound:
            return None

    # -- controllers

    async def _do_sync(self, step: Step, rc: str, victims: str = "") -> str:
        """``Sync(rc)``; ``Sync(rc, a+b)`` is a scale-down among pods of equal rank where
        the model chose to delete a, then b: the engine's reconciler takes that choice of
        its own ``reconcile_choices`` for this sync (where it would take the first)."""
        manager = self.engine.manager
        assert manager is not None
        before = {p.metadata.name for p in await self.engine.objects(Pod)}
        own = manager.reconcilers
        if victims:
            wanted = tuple(self._pod(v) for v in victims.split("+"))
            manager.reconcilers = attrs.evolve(
                own, replication=functools.partial(_chosen, wanted, own.replication))
        try:
            result = await manager.sync_rc(f"{self.namespace}/{rc}")
        finally:
            manager.reconcilers = own
        after = {p.metadata.name for p in await self.engine.objects(Pod)}
        created = sorted(after - before)
        return (f"manager.sync_rc({self.namespace}/{rc}) -> {_outcomes(result.outcomes)}"
                + (f"; created {', '.join(created)}" if created else ""))

    async def _do_endpoints(self, step: Step, svc: str) -> str:
        manager = self.engine.manager
        assert manager is not None
        key = f"{self.namespace}/{svc}"
        result = await manager.sync_endpoints(key)
        return f"manager.sync_endpoints({key}) -> {_outcomes(result.outcomes)}"

    async def _do_nodelifecycle(self, step: Step, order: str = "") -> str:
        """``NodeLifecycle``; ``NodeLifecycle(a+b)``: the pass writes pod a, then b (of
        the orders its cache could list them in, ``nodelifecycle.reconcile_choices``)."""
        manager = self.engine.manager
        assert manager is not None
        with self._in_order("node_lifecycle", nodelifecycle.reconcile_choices, order) as took:
            result = await manager.node_lifecycle_pass()
        return f"manager.node_lifecycle_pass() -> {_outcomes(result.outcomes)}{took()}"

    async def _do_namespace(self, step: Step, namespace_name: str, order: str = "") -> str:
        """``Namespace(ns)``; ``Namespace(ns, a+b)``: the sync deletes a, then b."""
        manager = self.engine.manager
        assert manager is not None
        with self._in_order("namespace", namespace.reconcile_choices, order,
                            namespace.reconcile) as took:
            result = await manager.sync_namespace(namespace_name)
        return (f"manager.sync_namespace({namespace_name}) -> {_outcomes(result.outcomes)}"
                f"{took()}")

    async def _do_gc(self, step: Step, order: str = "") -> str:
        """``GC``; ``GC(a+b)``: the pass writes a, then b."""
        manager = self.engine.manager
        assert manager is not None
        with self._in_order("gc", gc.reconcile_choices, order) as took:
            result = await manager.gc_pass()
        return f"manager.gc_pass() -> {_outcomes(result.outcomes)}{took()}"

    @contextlib.contextmanager
    def _in_order(self, reconciler: str, choices: Callable[..., list[list[Any]]],
                  order: str, default: Callable[..., list[Any]] | None = None
                  ) -> Iterator[Callable[[], str]]:
        """While the block runs, the manager's ``reconciler`` takes the choice of its
        module's ``choices`` (over the engine's own reconciler, a seeded bug included;
        ``default`` where the manager has none of its own) that writes in ``order``
        (model names, ``a+b``); with no order it decides alone. Yields what to add to
        the step's report: the order the engine wrote in."""
        manager = self.engine.manager
        assert manager is not None
        own = manager.reconcilers
        if not order:
            yield str
            return
        wanted = tuple(self.names.get(n, n) for n in order.split("+"))
        taken: list[tuple[str, ...]] = []

        def decide(*args: Any) -> list[Any]:
            reconcile = cast(Callable[..., list[Any]], getattr(own, reconciler) or default)
            picked = next((c for c in choices(*args, reconcile=reconcile)
                           if orders.order_of(c) == wanted), None)
            commands = picked if picked is not None else reconcile(*args)
            taken.append(orders.order_of(commands))
            return cast(list[Any], commands)

        def took() -> str:
            back = {v: k for k, v in self.names.items()}
            wrote = "+".join(back.get(n, n) for n in taken[-1]) if taken else ""
            return f"; wrote {wrote or 'nothing'}" + (
                "" if wrote == order else f" (the engine's cache offers no order {order})")

        manager.reconcilers = attrs.evolve(own, **{reconciler: decide})
        try:
            yield took
        finally:
            manager.reconcilers = own

    async def _do_schedule(self, step: Step, pod: str, node: str = "") -> str:
        scheduler = self.engine.scheduler
        assert scheduler is not None
        name = self._pod(pod)
        if node:
            self._agent(node)
        cached = scheduler.pods.get(f"{self.namespace}/{name}")
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
        agent = self._agent(node)
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
        await self._agent(node).report_status()
        return f"agent {node}.report_status()"

    # -- watches and time

    async def _do_deliver(self, step: Step, watcher: str, kind: str) -> str:
        engine = self.engine
        channel = {"cm": engine.manager_channel,
                   "scheduler": engine.scheduler_channel}.get(watcher)
        if channel is None and watcher in engine.nodes:
            channel = engine.nodes[watcher].channel
        if channel is None:
            raise ModelError(f"no watcher {watcher!r} (cm, scheduler or a node)")
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
        self._agent(node)
        for c in (await self.engine.containers()).get(node, []):
            if c.labels.get("io.kstate.pod.name") == name and c.name == cname:
                await self.engine.crash(node, c.id)
                return f"crashed container {cname} of {name} on {node}"
        return f"no running container {cname} of {name} on {node}"

    async def _do_partition(self, step: Step, node: str) -> str:
        self._agent(node)
        self.engine.partition(node)
        return f"{node} cut off"

    async def _do_heal(self, step: Step, node: str) -> str:
        self._agent(node)
        await self.engine.heal(node)
        return f"{node} reconnected"

    async def _do_restartkubelet(self, step: Step, node: str) -> str:
        self._agent(node)
        await self.engine.restart_agent(node)
        return f"{node}'s agent restarted (memory lost, containers kept)"

    async def _do_restartcontrollermanager(self, step: Step) -> str:
        await self.engine.restart_controller_manager()
        return "controller manager restarted from the store"

    # -- the user's script

    async def _do_scale(self, step: Step, rc: str, replicas: str) -> str:
        if not replicas.isdigit():
            raise ModelError(f"Scale's replicas must be a number, not {replicas!r}")
        await self.engine.client.scale(ReplicationController, rc, int(replicas), "default")
        return f"scaled {rc} to {replicas}"

    async def _do_deletepod(self, step: Step, pod: str, grace: str = "") -> str:
        name = self._pod(pod)
        await self.engine.client.delete(Pod, name, "default",
                                        grace_period_seconds=int(grace) if grace else None)
        return f"deleted pod {name}" + (f" (grace {grace} s)" if grace else "")

    async def _do_forcedeletepod(self, step: Step, pod: str) -> str:
        name = self._pod(pod)
        await self.engine.client.delete(Pod, name, "default", grace_period_seconds=0)
        return f"force-deleted pod {name}"

    async def _do_deleterc(self, step: Step, rc: str, policy: str) -> str:
        await self.engine.client.delete(ReplicationController, rc, "default",
                                        propagation_policy=policy)
        return f"deleted rc {rc} ({policy})"

    async def _do_deletenamespace(self, step: Step, namespace: str) -> str:
        await self.engine.client.delete(Namespace, namespace)
        return f"deleted namespace {namespace}"

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
        if prop == "no_content_in_gone_namespace":
            return await checks.content_in_gone_namespaces(engine)
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
        rc = manager.rcs.get(f"{self.namespace}/{args[0]}")
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
        return await engine.endpoints_mismatch() + await self._serving_not_ready()

    async def _serving_not_ready(self) -> list[str]:
        """The model's definition of the property: each Service's ready addresses are
        exactly its pods in the Pod machine's Ready state (``endpoints_mismatch`` only
        compares the controller with itself, so it cannot see a wrong state mapping)."""
        engine = self.engine
        pods = await engine.objects(Pod)
        now = engine.clock.now()
        endpoints = {(e.metadata.namespace, e.metadata.name): e
                     for e in await engine.objects(Endpoints)}
        out = []
        for svc in await engine.objects(Service):
            if not svc.spec.selector:
                continue
            ep = endpoints.get((svc.metadata.namespace, svc.metadata.name))
            serving = endpoint_names(ep) if ep is not None else set()
            ready = ready_matching(pods, svc, now)
            if serving != ready:
                out.append(f"endpoints {svc.metadata.namespace}/{svc.metadata.name} serve "
                           f"{sorted(serving)}; the pods in state Ready are {sorted(ready)}")
        return out

    async def _judge_liveness(self) -> ReplayOutcome:
        """Faults stop (every node reconnected), the engine runs on its own: it must
        come to rest *with the property's goal met* — resting short of it (an RC whose
        pods can never be scheduled) reproduces the violation as surely as never
        resting does."""
        engine = self.engine
        for name in engine.node_names:
            if not engine.reachable(name):
                await engine.heal(name)
        await engine.go_autonomous()
        settled = await engine.settle(goal=self._liveness_goal)
        prop = self.doc.property
        if settled.converged:
            return self._outcome(False, f"{prop}: after the trace, the engine running on its "
                                 f"own settled in {settled.elapsed:.0f} s of fake time")
        unmet = "; ".join(settled.unmet[:5])
        return self._outcome(True, f"{prop}: after the trace, the engine running on its "
                             f"own did not reach the property's goal within "
                             f"{settled.elapsed:.0f} s of fake time: {unmet}")

    async def _liveness_goal(self) -> list[str]:
        """What keeps the liveness property's goal from holding on the engine now (the
        model's ``_at_replicas`` / ``_endpoints_match`` / ``_no_orphan_containers``)."""
        from kstate.verify.stateful import checks

        engine = self.engine
        prop = self.doc.property
        if prop == "converges":
            return await checks.replicas_not_ready(engine)
        if prop == "endpoints_converge":
            return await engine.endpoints_mismatch()
        if prop == "no_orphans":
            return await engine.orphans()
        if prop == "deletions_complete":
            return [f"pod {p.metadata.name} still terminating"
                    for p in await engine.objects(Pod) if p.metadata.deletion_timestamp]
        return []


def _arity(handler: Callable[..., Any]) -> tuple[int, int]:
    """(fewest, most) action arguments a ``_do_*`` handler takes (after self, step)."""
    params = list(inspect.signature(handler).parameters.values())[2:]
    return (sum(1 for p in params if p.default is inspect.Parameter.empty), len(params))


#: Every action of the system model (``kstate.verify.system.model``) the replay maps
#: onto the engine -> the (fewest, most) arguments it takes.
ACTIONS: dict[str, tuple[int, int]] = {
    name: _arity(getattr(_Replayer, f"_do_{name.lower()}"))
    for name in ("Sync", "Endpoints", "NodeLifecycle", "GC", "Namespace", "Schedule",
                 "Kubelet", "NodeReady", "Deliver", "Tick", "Crash", "Partition", "Heal",
                 "RestartControllerManager", "RestartKubelet", "Scale", "DeletePod",
                 "ForceDeletePod", "DeleteRC", "Cordon", "Drain", "DeleteNamespace")}


def _chosen(victims: tuple[str, ...], fallback: ReplicationFn, *args: Any) -> list[Any]:
    """The replication reconciler's choice deleting exactly ``victims`` (engine names),
    in that order; else what ``fallback`` decides (the engine's cache does not offer
    that choice: the step's report shows where the two part)."""
    for commands in replication.reconcile_choices(*args):
        if tuple(c.name for c in commands if isinstance(c, Delete)) == victims:
            return commands
    return cast(list[Any], fallback(*args))


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


__all__ = ["ACTIONS", "LIVENESS", "ReplayOutcome", "StepReport", "TraceDoc", "load_trace",
           "parse_trace", "replay", "replay_file", "scenario_dirs"]
