"""The engine's API server and the checker's abstract API, request by request.

``kstate verify`` judges the engine only if its world writes exactly as the engine does.
Hypothesis draws sequences of requests — creates (named and generated, valid and
invalid bodies, bound or not, owned by an RC or not), replaces and status writes (fresh,
stale and absent resourceVersions; labels, finalizers, spec changes, a rebind; the status
writes a node agent and the replication controller make), deletes (every grace period
and propagation policy, with and without a uid precondition), binds and evictions, the
passing of time, and replication syncs whose commands (creates from the template, deletes
with uid preconditions, status updates) are sent as the controller's requests — and
applies each to:

* the engine: ``ApiCore`` over the memory store, with a ``FakeClock`` and a seeded rng;
* the checker: ``AbstractApi`` over a ``World`` whose ``now`` is the same clock.

After every step the outcome (``ok`` or the executor's name for the error) and every
stored object must be equal, ignoring uids and resourceVersions (the engine draws uids
and counts revisions; the checker names uids after objects and hashes contents), with
the engine's generated names mapped to the checker's (paired by the create that made
them). Timestamps are compared exactly: both clocks are the same.

Out of the comparison, because the model has no such plumbing: namespaces (every
request is in ``default``), Service address allocation (no Services here), dry runs.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from kstate.api import writes
from kstate.api.codec import from_dict, to_dict
from kstate.api.defaults import default
from kstate.api.frozen import FrozenDict
from kstate.api.helpers import with_labels, with_meta, with_spec
from kstate.api.meta import DeleteOptions, KubeObject, Preconditions
from kstate.api.objects import Node, Pod, ReplicationController
from kstate.api.registry import REGISTRY
from kstate.api.server.core import ApiCore
from kstate.clock import FakeClock, rfc3339
from kstate.control import replication
from kstate.control.commands import Command, Create, Delete, Update
from kstate.control.executor import outcome_of
from kstate.errors import KstateError
from kstate.store import open_store
from kstate.verify.system.world import AbstractApi, World, key

T0 = 1_700_000_000.0
NODES = ("n1", "n2")
KINDS = ("Pod", "ReplicationController", "Node")


# ------------------------------------------------------------------ request bodies


def _pod(name: str, node: str, grace: int | None, image: str, finalizer: bool,
         owner: KubeObject | None) -> Pod:
    meta: dict[str, Any] = {"namespace": "default", "labels": {"app": "web"}}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = "web-"
    if finalizer:
        meta["finalizers"] = ["example.com/hold"]
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ReplicationController",
                                    "name": owner.metadata.name, "uid": owner.metadata.uid,
                                    "controller": True, "blockOwnerDeletion": True}]
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": image}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return from_dict(Pod, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})


def _rc(name: str, replicas: int) -> ReplicationController:
    return default(from_dict(ReplicationController, {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"app": "web"},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "img:1"}]}}},
    }))


def _node(name: str) -> Node:
    stamp = rfc3339(T0)
    return from_dict(Node, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                            "status": {"conditions": [{
                                "type": "Ready", "status": "True", "reason": "KubeletReady",
                                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}})


def _container(state: dict[str, Any], ready: bool = False, restarts: int = 0
               ) -> dict[str, Any]:
    return {"name": "c", "image": "img:1", "ready": ready, "restartCount": restarts,
            "state": state}


#: Status writes as the node agent makes them (phase, conditions, container states).
POD_STATUSES: dict[str, dict[str, Any]] = {
    "creating": {"phase": "Pending", "containerStatuses": [
        _container({"waiting": {"reason": "ContainerCreating"}})]},
    "running": {"phase": "Running", "containerStatuses": [
        _container({"running": {"startedAt": rfc3339(T0)}})],
        "conditions": [{"type": "Ready", "status": "False"}]},
    "ready": {"phase": "Running", "containerStatuses": [
        _container({"running": {"startedAt": rfc3339(T0)}}, ready=True)],
        "conditions": [{"type": "Ready", "status": "True"}]},
    "crashloop": {"phase": "Running", "containerStatuses": [
        _container({"waiting": {"reason": "CrashLoopBackOff"}}, restarts=1)]},
    "succeeded": {"phase": "Succeeded", "containerStatuses": [
        _container({"terminated": {"exitCode": 0, "reason": "Completed"}})]},
    "failed": {"phase": "Failed", "containerStatuses": [
        _container({"terminated": {"exitCode": 1, "reason": "Error"}})]},
    "bad": {"phase": "Exploded"},
}


def _status_write(obj: KubeObject, what: str) -> KubeObject:
    """``obj`` with the status ``what`` (each kind's writers: node agent, RC controller,
    node heartbeat)."""
    data = to_dict(obj)
    if isinstance(obj, Pod):
        data["status"] = {**data.get("status", {}), **POD_STATUSES[what]}
    elif isinstance(obj, ReplicationController):
        replicas = {"ready": 1, "succeeded": 0}.get(what, 2)
        data["status"] = {"replicas": replicas, "observedGeneration": obj.metadata.generation}
    elif isinstance(obj, Node):
        status = {"ready": "True", "failed": "False", "crashloop": "Unknown"}.get(what, "True")
        data["status"] = {"conditions": [{"type": "Ready", "status": status}]}
    return from_dict(type(obj), data)


def _replace(obj: KubeObject, what: str) -> KubeObject:
    """``obj`` as a user or controller replaces it."""
    if what == "label":
        return with_labels(obj, touched="yes")
    if what == "hold":
        return with_meta(obj, finalizers=(*obj.metadata.finalizers, "example.com/hold"))
    if what == "release":
        return with_meta(obj, finalizers=())
    if what == "spec":
        if isinstance(obj, ReplicationController):
            return with_spec(obj, replicas=(obj.spec.replicas or 0) + 1)
        if isinstance(obj, Node):
            return with_spec(obj, unschedulable=not obj.spec.unschedulable)
        if isinstance(obj, Pod):  # immutable: refused
            container = attrs.evolve(obj.spec.containers[0], image="img:2")
            return with_spec(obj, containers=(container,))
    if what == "rebind" and isinstance(obj, Pod):
        return with_spec(obj, node_name="n2" if obj.spec.node_name != "n2" else "n1")
    if what == "status_in_main":  # ignored for kinds with a status subresource
        return _status_write(obj, "succeeded")
    return obj


# ------------------------------------------------------------------ steps

names = st.sampled_from(["", "", "a", "b"])  # "": generateName
slots = st.integers(0, 7)
rv_modes = st.sampled_from(["fresh", "stale", "none"])
uid_modes = st.sampled_from(["none", "right", "wrong"])
graces = st.sampled_from([None, 0, 1, 5, 30, 60])

pod_creates = st.tuples(st.just("create_pod"), names, st.sampled_from(["", "", *NODES]),
                        st.sampled_from([None, 0, 10]),
                        st.sampled_from(["img:1", "img:1", "img:1", ""]),
                        st.booleans(), st.booleans())
steps = st.one_of(
    pod_creates,
    pod_creates,
    st.tuples(st.just("create_rc"), st.sampled_from(["web", "db"]), st.integers(-1, 3)),
    st.tuples(st.just("create_node"), st.sampled_from(NODES)),
    st.tuples(st.just("replace"), slots,
              st.sampled_from(["label", "hold", "release", "spec", "rebind",
                               "status_in_main"]), rv_modes),
    st.tuples(st.just("status"), slots, st.sampled_from(sorted(POD_STATUSES)), rv_modes),
    st.tuples(st.just("delete"), slots, graces,
              st.sampled_from([None, "Background", "Foreground", "Orphan"]), uid_modes),
    st.tuples(st.just("bind"), slots, st.sampled_from(NODES), uid_modes),
    st.tuples(st.just("evict"), slots, graces, uid_modes),
    st.tuples(st.just("tick"), st.sampled_from([1, 5, 29, 31])),
    st.tuples(st.just("sync_rc"), slots),
)


@attrs.define
class Slot:
    """One object the sequence created, as each side knows it: its key, and the first
    and the latest version each side saw (a stale write sends the first)."""

    kind: str
    engine_name: str
    model_name: str
    engine_first: KubeObject
    model_first: KubeObject
    engine_last: KubeObject
    model_last: KubeObject


class Sides:
    """The engine and the model, driven by the same steps."""

    def __init__(self, core: ApiCore, clock: FakeClock) -> None:
        self.core = core
        self.clock = clock
        self.api = AbstractApi(watch_lag=10**9)
        self.world = World(store=FrozenDict(), now=T0)
        self.slots: list[Slot] = []
        self.names: dict[str, str] = {}  # engine name -> model name

    # ------------------------------------------------------------ both sides

    async def step(self, step: tuple[Any, ...]) -> tuple[str, str]:
        verb = step[0]
        if verb == "tick":
            self.clock.advance(step[1])
            self.world = attrs.evolve(self.world, now=self.world.now + step[1])
            return "ok", "ok"
        if verb.startswith("create_"):
            return await self.create(step)
        if not self.slots:
            return "ok", "ok"
        slot = self.slots[step[1] % len(self.slots)]
        if verb == "sync_rc":
            return await self.sync_rc(slot)
        engine_obj, model_obj = await self.current(slot)
        if verb in ("replace", "status"):
            _, _, what, rv_mode = step
            if rv_mode == "stale":
                engine_obj, model_obj = slot.engine_first, slot.model_first
            change = _replace if verb == "replace" else _status_write
            sub = "" if verb == "replace" else "status"
            e_req, m_req = change(engine_obj, what), change(model_obj, what)
            if rv_mode == "none":
                e_req, m_req = (with_meta(e_req, resource_version=""),
                                with_meta(m_req, resource_version=""))
            engine = await self.engine(self.core.update(e_req, subresource=sub))
            model = self.api.update(self.world, m_req, sub)
            return engine, self.model(model)
        e_uid, m_uid = {"none": ("", ""), "wrong": ("bogus", "bogus"),
                        "right": (engine_obj.metadata.uid, model_obj.metadata.uid)}[step[-1]]
        ns = engine_obj.metadata.namespace
        if verb == "delete":
            _, _, grace, propagation, _ = step
            info = REGISTRY.for_kind(slot.kind)

            def options(uid: str) -> DeleteOptions:
                return DeleteOptions(grace_period_seconds=grace,
                                     propagation_policy=propagation or "",
                                     preconditions=Preconditions(uid=uid) if uid else None)

            engine = await self.engine(self.core.delete(info, ns, slot.engine_name,
                                                        options(e_uid)))
            model = self.api.delete(self.world, slot.kind, ns, slot.model_name, m_uid,
                                    grace, propagation)
            return engine, self.model(model)
        if slot.kind != "Pod":
            return "ok", "ok"
        if verb == "bind":
            node = step[2]
            engine = await self.engine(self.core.bind(
                ns, writes.binding_of(ns, slot.engine_name, node, e_uid),
                name=slot.engine_name))
            model = self.api.bind(self.world, ns, slot.model_name, m_uid, node)
            return engine, self.model(model)
        assert verb == "evict"
        grace = step[2]
        engine = await self.engine(self.core.evict(
            ns, slot.engine_name, writes.eviction_of(ns, slot.engine_name, grace, e_uid)))
        model = self.api.evict(self.world, ns, slot.model_name, m_uid, grace)
        return engine, self.model(model)

    async def create(self, step: tuple[Any, ...]) -> tuple[str, str]:
        verb = step[0]
        if verb == "create_pod":
            _, name, node, grace, image, finalizer, owned = step
            rcs = [s for s in self.slots if s.kind == "ReplicationController"]
            owner = rcs[0] if owned and rcs else None
            e_req = _pod(name, node, grace, image, finalizer,
                         owner.engine_first if owner else None)
            m_req = _pod(name, node, grace, image, finalizer,
                         owner.model_first if owner else None)
        else:
            e_req = m_req = (_rc(step[1], step[2]) if verb == "create_rc" else _node(step[1]))
        try:
            created: KubeObject | None = await self.core.create(e_req)
            engine = "ok"
        except KstateError as err:
            created, engine = None, outcome_of(err)
        out = self.api.create(self.world, m_req)
        self.world = out.world
        if created is not None and out.obj is not None:
            self._remember(created, out.obj)
        return engine, out.result

    async def sync_rc(self, slot: Slot) -> tuple[str, str]:
        """One replication sync on each side's own store (no expectations: a fresh
        controller), its commands sent as the controller's requests, in order."""
        if slot.kind != "ReplicationController":
            return "ok", "ok"
        engine_rc, model_rc = await self.current(slot)
        if self.world.get(key(slot.kind, "default", slot.model_name)) is None:
            return "ok", "ok"
        # A cache's order is plumbing, yet it breaks ranking ties (Kubernetes breaks them
        # arbitrarily) and generated names differ between the sides: both present their
        # pods in the model's name order, so a tie breaks the same way on each.
        engine_pods = sorted((await self.core.list(REGISTRY.for_kind("Pod"), "default")).items,
                             key=lambda p: self.names.get(p.metadata.name, p.metadata.name))
        model_pods = sorted(self.world.pods(), key=lambda p: p.metadata.name)
        engine_cmds = replication.reconcile(replication.ReplicationView(
            engine_rc, tuple(engine_pods)), self.clock.now())  # type: ignore[arg-type]
        model_cmds = replication.reconcile(replication.ReplicationView(
            model_rc, tuple(model_pods)), self.world.now)  # type: ignore[arg-type]
        assert [type(c) for c in engine_cmds] == [type(c) for c in model_cmds]
        engine, model = [], []
        for e_cmd, m_cmd in zip(engine_cmds, model_cmds, strict=True):
            e_out, created = await self.engine_command(e_cmd)
            out = self.model_command(m_cmd)
            engine.append(e_out)
            model.append(str(out.result) if out is not None else "ok")
            if out is not None:
                self.world = out.world
                if created is not None and out.obj is not None:
                    self._remember(created, out.obj)
        return ",".join(engine), ",".join(model)

    async def engine_command(self, cmd: Command) -> tuple[str, KubeObject | None]:
        """A controller command as the engine's API request (and what it created)."""
        core = self.core
        try:
            if isinstance(cmd, Create):
                return "ok", await core.create(cmd.obj)
            if isinstance(cmd, Update):
                await core.update(cmd.obj, subresource=cmd.subresource)
            elif isinstance(cmd, Delete):
                pre = Preconditions(uid=cmd.uid, resource_version=cmd.resource_version) \
                    if cmd.uid or cmd.resource_version else None
                await core.delete(REGISTRY.for_kind(cmd.kind), cmd.namespace, cmd.name,
                                  DeleteOptions(grace_period_seconds=cmd.grace_seconds,
                                                propagation_policy=cmd.propagation or "",
                                                preconditions=pre))
        except KstateError as err:
            return outcome_of(err), None
        return "ok", None

    def model_command(self, cmd: Command) -> Any:
        """The same command as the checker's abstract API call (``None``: no request)."""
        api, w = self.api, self.world
        if isinstance(cmd, Create):
            return api.create(w, cmd.obj)
        if isinstance(cmd, Update):
            return api.update(w, cmd.obj, cmd.subresource)
        if isinstance(cmd, Delete):
            return api.delete(w, cmd.kind, cmd.namespace, cmd.name, cmd.uid,
                              cmd.grace_seconds, cmd.propagation,
                              resource_version=cmd.resource_version)
        return None

    def _remember(self, engine_obj: KubeObject, model_obj: KubeObject) -> None:
        self.names[engine_obj.metadata.name] = model_obj.metadata.name
        self.slots.append(Slot(type(engine_obj).__name__, engine_obj.metadata.name,
                               model_obj.metadata.name, engine_obj, model_obj, engine_obj,
                               model_obj))

    async def current(self, slot: Slot) -> tuple[KubeObject, KubeObject]:
        """Each side's latest version of ``slot`` (the last seen, once it is gone)."""
        try:
            ns = slot.engine_first.metadata.namespace
            slot.engine_last = await self.core.get(REGISTRY.for_kind(slot.kind), ns,
                                                   slot.engine_name)
        except KstateError:
            pass
        found = self.world.get(key(slot.kind, slot.model_first.metadata.namespace,
                                   slot.model_name))
        if found is not None:
            slot.model_last = found
        return slot.engine_last, slot.model_last

    async def engine(self, call: Any) -> str:
        try:
            await call
        except KstateError as err:
            return outcome_of(err)
        return "ok"

    def model(self, out: Any) -> str:
        self.world = out.world
        return str(out.result)

    # ------------------------------------------------------------ comparing

    def _plain(self, obj: KubeObject, names: dict[str, str]) -> dict[str, Any]:
        data = to_dict(obj)
        meta = data["metadata"]
        for field in ("uid", "resourceVersion"):
            meta.pop(field, None)
        meta["name"] = names.get(meta["name"], meta["name"])
        for ref in meta.get("ownerReferences", []):
            ref.pop("uid", None)
        return data

    async def stores(self) -> tuple[dict[str, Any], dict[str, Any]]:
        engine, model = {}, {}
        for kind in KINDS:
            listed = await self.core.list(REGISTRY.for_kind(kind))
            for obj in listed.items:
                plain = self._plain(obj, self.names)
                engine[f"{kind}/{plain['metadata'].get('namespace', '')}/"
                       f"{plain['metadata']['name']}"] = plain
            for obj in self.world.objects(kind):
                plain = self._plain(obj, {})
                model[f"{kind}/{plain['metadata'].get('namespace', '')}/"
                      f"{plain['metadata']['name']}"] = plain
        return engine, model


async def run(sequence: list[tuple[Any, ...]], seed: int,
              api: AbstractApi | None = None) -> dict[str, Any]:
    """Apply ``sequence`` to both sides, comparing after every step; the final store."""
    clock = FakeClock(T0)
    store = open_store("memory://")
    core = ApiCore(store, clock, rng=random.Random(seed))
    await core.start()
    try:
        sides = Sides(core, clock)
        if api is not None:
            sides.api = api
        for i, step in enumerate(sequence):
            engine, model = await sides.step(step)
            assert engine == model, f"step {i} {step}: engine {engine}, model {model}"
            stored_e, stored_m = await sides.stores()
            assert stored_e == stored_m, f"step {i} {step}: the stores differ"
        return stored_m if sequence else {}
    finally:
        await core.close()
        await store.close()


@settings(max_examples=150)
@given(st.lists(steps, min_size=1, max_size=40), st.integers(0, 2**16))
def test_engine_and_model_write_alike(sequence: list[tuple[Any, ...]], seed: int) -> None:
    asyncio.run(run(sequence, seed))


SETTLED = [
        ("create_node", "n1"),
        ("create_rc", "web", 1),
        ("create_pod", "a", "n1", 30, "img:1", False, True),
        ("create_pod", "b", "", None, "img:1", True, False),
        ("delete", 1, None, None, "none"),  # RC: orphan finalizer, generation 2
        ("tick", 5),
        ("delete", 2, None, None, "right"),  # pod a: Terminating, deadline T0+35
        ("tick", 5),
        ("delete", 2, 10, None, "none"),  # shorter: deadline T0+5+10
        ("delete", 2, 20, None, "none"),  # longer: nothing
        ("delete", 3, None, None, "none"),  # pod b: held by its finalizer
        ("bind", 3, "n1", "right"),  # refused: being deleted
]


def test_the_settled_disagreements_hold_on_both_sides() -> None:
    """The four cases issue 14 found, as one fixed sequence: an RC deleted without a
    policy (orphaned), a terminating pod deleted again with a shorter grace (deadline
    moved by the difference), the generation bump of a mark, a bind of a deleting pod."""
    store = asyncio.run(run(SETTLED, seed=1))
    rc = store["ReplicationController/default/web"]["metadata"]
    assert rc["finalizers"] == ["orphan"] and rc["generation"] == 2
    a = store["Pod/default/a"]
    assert a["metadata"]["deletionTimestamp"] == rfc3339(T0 + 5 + 10)
    assert a["metadata"]["deletionGracePeriodSeconds"] == 10
    assert a["metadata"]["generation"] == 2
    b = store["Pod/default/b"]
    assert b["metadata"]["deletionTimestamp"] and not b["spec"].get("nodeName")


def test_a_ranking_tie_breaks_alike_on_both_sides() -> None:
    """Four orphans an RC of 3 adopts, all created at one instant: the scale-down
    ranking ties, and both sides must delete the same pod (found by Hypothesis)."""
    asyncio.run(run([("create_pod", "", "", None, "img:1", False, False)] * 4
                    + [("create_rc", "web", 3), ("sync_rc", 4)], seed=1))


def test_a_recreated_object_is_not_the_one_a_stale_writer_saw() -> None:
    """A node deleted and created again under its name, then a write from before the
    delete: the engine answers 409 (a new object, a new resourceVersion); the model must
    too, although the new object's content is the old one's (found by Hypothesis)."""
    asyncio.run(run([("create_node", "n1"), ("delete", 0, None, None, "none"),
                     ("create_pod", "", "", None, "img:1", False, False),
                     ("create_node", "n1"), ("replace", 0, "label", "stale")], seed=1))
