"""Which actions of the system model are independent: static footprints for partial-order
reduction.

Where it sits: ``kstate.verify.system``, called by ``SystemModel.persistent`` (model.py);
the generic checker (``kstate.verify.checker``, docs/checker.md "Partial-order
reduction") supplies the stubborn-set closure and the cycle proviso. This module only
states, per action *class*, what the action may read and write, as named locations of
the ``World``:

* ``("store", K)`` — the store's objects of kind K;
* ``("queue", w, K)`` / ``("cache", w, K)`` — watcher w's pending events and cache of K
  (w is ``"cm"``, ``"scheduler"`` or a node name for its kubelet);
* ``"cm-expectations"``, ``"cm-memory"``; ``("kubelet", n)`` (the agent's memory: back-off,
  start errors, probe results), ``("up", n)``, ``("runtime", n)``;
* ``"now"``, ``("budget", fault)``, ``"script"``, ``"api"`` (availability), ``"names"``
  (generateName counter and incarnations), ``("flag", f)`` per history flag.

Static over-approximations, because a persistent set needs the footprint of actions not
yet enabled too. The rule that dominates: an API write of kind K writes the store, every
watcher's K queue and — since a queue longer than its lag is caught up inside the write
— every watcher's K *cache* (and, for pods, the controller manager's expectations via
its watch handler). Every action of one class (``Kubelet(n, *)``) shares the class's
footprint, and a class stands for its instances that are not enabled yet.

Visibility: an action is visible when it writes a location a checked property reads.
Properties whose violation is *stable* (the history flags, ``script_done``,
``faults_spent``: once false, false for good) need no invisibility — a persistent set
only postpones actions, and a stable violation reached later is still reached — so
only the other properties' reads count. A property this table does not know reads
everything.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

from kstate.verify.checker import Footprint, stubborn
from kstate.verify.system.world import WATCHES

Location = Hashable

KINDS = ("Pod", "ReplicationController", "Service", "Endpoints", "Node", "Lease",
         "Namespace")
FLAGS = ("overcreated", "illegal", "rebound", "restarted_finished",
         "evicted_in_full_disruption")
FAULTS = ("container_crash", "node_partition", "controller_restart", "node_reboot",
          "kubelet_restart", "api_outage", "readiness_failure")

#: Properties whose violation (``always``) or witness (``sometimes``) is stable.
STABLE = frozenset({"never_overcreates", "legal_transitions", "bound_once",
                    "finished_never_restarts", "no_mass_eviction", "script_done",
                    "faults_spent"})


def _store(*kinds: str) -> frozenset[Location]:
    return frozenset(("store", k) for k in kinds)


class Footprints:
    """The footprint of every action class of one cluster (its nodes are fixed)."""

    def __init__(self, nodes: Sequence[str], property_names: Iterable[str]) -> None:
        self.nodes = tuple(nodes)
        self.watchers: dict[str, tuple[str, ...]] = {
            "cm": WATCHES["cm"], "scheduler": WATCHES["sched"],
            **{n: WATCHES["kubelet"] for n in self.nodes}}
        self.classes = self._classes()
        everything = frozenset(loc for fp in self.classes.values()
                               for loc in fp.reads | fp.writes)
        self.visible = frozenset().union(*(self._reads_of(name, everything)
                                           for name in property_names))
        self._memo: dict[tuple[str, ...], list[int] | None] = {}

    # ------------------------------------------------------------------ classes

    def api(self, *kinds: str) -> Footprint:
        """An API write of any of ``kinds`` with its fan-out to every watcher."""
        writes: set[Location] = {"names", ("flag", "illegal"), ("flag", "rebound")}
        reads: set[Location] = {"api", "now", "names", ("store", "Namespace")}
        for k in kinds:
            writes.add(("store", k))
            for w, watched in self.watchers.items():
                if k in watched:
                    writes |= {("queue", w, k), ("cache", w, k)}
            if k == "Pod":
                # cm's watch handler moves expectations, reading its RC cache; a kubelet
                # is sent a pod's event when it is up and the pod is, was or is cached
                # as its own
                writes.add("cm-expectations")
                reads.add(("cache", "cm", "ReplicationController"))
                reads |= {("up", n) for n in self.nodes}
        return Footprint(frozenset(reads | writes), frozenset(writes))

    def _classes(self) -> dict[str, Footprint]:
        def fp(reads: Iterable[Location], writes: Iterable[Location],
               *api_kinds: str) -> Footprint:
            out = Footprint(frozenset(reads) | frozenset(writes), frozenset(writes))
            if api_kinds:
                call = self.api(*api_kinds)
                out = Footprint(out.reads | call.reads, out.writes | call.writes)
            return out

        def cm_cache(*kinds: str) -> set[Location]:
            return {("cache", "cm", k) for k in kinds}

        # Every component that applies commands runs the engine's plan: its effects may
        # write the controller manager's expectations and memory, and a "get" call
        # reads the store of any kind.
        plan = {"cm-expectations", "cm-memory", *_store(*KINDS)}
        c: dict[str, Footprint] = {
            "Sync(*)": fp({*cm_cache("Pod", "ReplicationController"), *plan},
                          {"cm-expectations", "cm-memory", ("flag", "overcreated")},
                          "Pod", "ReplicationController"),
            "Endpoints(*)": fp({*cm_cache("Service", "Endpoints", "Pod"), *plan},
                               {"cm-expectations", "cm-memory"}, "Endpoints"),
            "NodeLifecycle": fp({*cm_cache("Node", "Lease", "Pod"), *plan},
                                {"cm-expectations", "cm-memory",
                                 ("flag", "evicted_in_full_disruption")}, "Node", "Pod"),
            "GC": fp({*cm_cache("Pod", "ReplicationController", "Node"), *plan},
                     {"cm-expectations", "cm-memory"}, *KINDS),
            "Namespace(*)": fp({*cm_cache("Namespace"), *plan},
                               {"cm-expectations", "cm-memory"}, *KINDS),
            "Schedule(*)": fp({*(("cache", "scheduler", k) for k in WATCHES["sched"]), *plan},
                              {"cm-expectations", "cm-memory"}, "Pod"),
            "Tick": fp(self._everything_but_flags(), {"now", ("cache", "cm", "Lease")},
                       "Lease"),
            "RestartControllerManager": fp(
                {*_store(*WATCHES["cm"]), ("budget", "controller_restart")},
                {*self._watcher("cm"), "cm-expectations", "cm-memory",
                 ("budget", "controller_restart")}),
            "ApiOutage": fp({"api", ("budget", "api_outage")}, {"api", ("budget", "api_outage")}),
            "ApiBack": fp({"api"}, {"api"}),
            # the script's head decides the step: every verb, any kind
            "User(*)": fp({"script"}, {"script"}, *KINDS),
        }
        for w, kinds in self.watchers.items():
            for k in kinds:
                loc: set[Location] = {("queue", w, k), ("cache", w, k)}
                if w == "cm" and k == "Pod":
                    loc |= {"cm-expectations"}
                reads = loc | ({("cache", "cm", "ReplicationController")} if w == "cm" else
                               {("up", w)} if w in self.nodes else set())
                c[f"Deliver({w}, {k})"] = fp(reads, loc)
        for n in self.nodes:
            agent = {("kubelet", n), ("runtime", n), *self._watcher(n)}
            # the step's boundary depends on whether crashes remain in the budget
            c[f"Kubelet({n}, *)"] = fp({*agent, ("up", n), ("store", "Pod"), "now",
                                        ("budget", "container_crash")},
                                       {*agent, ("flag", "restarted_finished")}, "Pod")
            c[f"NodeReady({n})"] = fp({("up", n), ("store", "Node"), "now"}, (), "Node")
            probe = {("up", n), ("cache", n, "Pod"), ("runtime", n), ("kubelet", n)}
            c[f"ProbePass({n}, *)"] = fp(probe, {("kubelet", n)})
            c[f"ProbeFail({n}, *)"] = fp(probe | {("budget", "readiness_failure")},
                                         {("kubelet", n), ("budget", "readiness_failure")})
            c[f"Crash({n}, *)"] = fp({("runtime", n), ("budget", "container_crash"), "now"},
                                     {("runtime", n), ("budget", "container_crash")})
            c[f"Partition({n})"] = fp({("up", n), ("budget", "node_partition")},
                                      {("up", n), ("budget", "node_partition")})
            c[f"Heal({n})"] = fp({("up", n), ("store", "Pod")},
                                 {("up", n), *self._watcher(n)})
            restart = {("up", n), ("store", "Pod"), *agent}
            c[f"Reboot({n})"] = fp(restart | {("budget", "node_reboot")},
                                   agent | {("budget", "node_reboot")})
            c[f"RestartKubelet({n})"] = fp(restart | {("budget", "kubelet_restart")},
                                           {("kubelet", n), *self._watcher(n),
                                            ("budget", "kubelet_restart")})
        return c

    def _watcher(self, w: str) -> set[Location]:
        return {loc for k in self.watchers[w] for loc in (("queue", w, k), ("cache", w, k))}

    def _everything_but_flags(self) -> set[Location]:
        out: set[Location] = {"now", "api", "script", "names", "cm-expectations",
                              "cm-memory", *_store(*KINDS)}
        for w in self.watchers:
            out |= self._watcher(w)
        for n in self.nodes:
            out |= {("kubelet", n), ("up", n), ("runtime", n)}
        return out

    # ------------------------------------------------------------------ naming

    _USER = ("Scale", "DeletePod", "ForceDeletePod", "DeleteRC", "Cordon", "Drain",
             "DeleteNamespace")

    def class_of(self, name: str) -> str:
        """``Kubelet(node-1, web-0)`` -> ``Kubelet(node-1, *)``; unknown -> KeyError."""
        family, _, rest = name.partition("(")
        params = [p.strip() for p in rest[:-1].split(",")] if rest else []
        if family in self._USER:
            return "User(*)"
        if family in ("Sync", "Endpoints", "Namespace", "Schedule"):
            return f"{family}(*)"
        if family in ("NodeLifecycle", "GC"):
            return family  # NodeLifecycle(a+b): one of the pass's orders, same footprint
        if family in ("Kubelet", "ProbePass", "ProbeFail", "Crash"):
            return f"{family}({params[0]}, *)"
        if family == "Deliver":
            return name
        if params:
            return f"{family}({params[0]})"
        return family

    def footprint(self, name: str) -> Footprint:
        return self.classes[name if name in self.classes else self.class_of(name)]

    # ------------------------------------------------------------------ properties

    def _reads_of(self, prop: str, everything: frozenset[Location]) -> frozenset[Location]:
        if prop in STABLE:
            return frozenset()
        cm_queues: set[Location] = {("queue", "cm", k) for k in WATCHES["cm"]}
        runtimes: set[Location] = {("runtime", n) for n in self.nodes}
        reads: dict[str, set[Location]] = {
            "no_pod_on_two_nodes": runtimes,
            "endpoints_ready_only": cm_queues | _store("Pod", "Service", "Endpoints")
            | {"now"},
            "single_source_of_truth": cm_queues | _store("Pod", "ReplicationController")
            | {"cm-expectations", "now"},
            "no_content_in_gone_namespace": set(_store(*KINDS)) | runtimes,
            "replicas_ready": set(_store("ReplicationController", "Pod")) | {"now"},
            "node_not_ready": set(_store("Node")),
            "container_restarted": set(_store("Pod")),
            "endpoints_ready": set(_store("Endpoints")),
            "namespace_terminating_with_pods": set(_store("Namespace", "Pod")),
            "namespace_gone": set(_store("Namespace")),
        }
        return frozenset(reads.get(prop, everything))

    # ------------------------------------------------------------------ the set

    def persistent(self, names: Sequence[str]) -> list[int] | None:
        """A persistent set of invisible actions among ``names`` (a state's actions), as
        indexes; footprints are static, so the answer depends on the names' classes
        only and is remembered."""
        classes = tuple(self.class_of(n) for n in names)
        if classes in self._memo:
            return self._memo[classes]
        if any(c not in self.classes for c in classes):
            return None  # an action this table does not know: no reduction
        # a state's enabled instances of one class are one action to the closure
        # (they share its footprint); the classes stand for everything not enabled
        chosen = stubborn(list(classes), self.classes, self.classes.__getitem__,
                          self.visible)
        self._memo[classes] = chosen
        return chosen
