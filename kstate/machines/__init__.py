"""Lifecycle definitions: the one source every executor runs.

Where it sits: the root of the definition path (ARCHITECTURE §2). Everyone may import
it; it imports only ``transitions``, ``attrs`` and ``networkx`` and does no I/O.

* ``definition`` — the vocabulary (``MachineDef``, ``State``, ``Trigger``, ``Guard``,
  ``Transition``) and the build-time checks;
* ``pod``, ``replication``, ``service``, ``node``, ``namespace`` — the five lifecycles;
* ``live`` — the engine's executor (``transitions``), ``compiled`` — the checker's.

>>> from kstate import machines
>>> machines.live("pod").fire("Pending", "schedule")
'Scheduled'
>>> machines.compiled("pod").fire("Pending", "schedule")
'Scheduled'
"""

from __future__ import annotations

from functools import cache

from kstate.machines.compiled import CompiledMachine, compile_machine
from kstate.machines.definition import (
    Guard,
    MachineDef,
    State,
    StateGroup,
    Transition,
    Trigger,
)
from kstate.machines.live import Lifecycle, LiveMachine
from kstate.machines.namespace import KUBERNETES_FINALIZER, NAMESPACE
from kstate.machines.node import NODE
from kstate.machines.pod import POD, BackOffPolicy
from kstate.machines.replication import RC
from kstate.machines.service import SERVICE

#: Canonical name -> definition, in the order graphs and docs list them.
MACHINES: dict[str, MachineDef] = {"pod": POD, "rc": RC, "service": SERVICE, "node": NODE,
                                   "namespace": NAMESPACE}

_ALIASES = {
    "pods": "pod", "po": "pod",
    "replicationcontroller": "rc", "replicationcontrollers": "rc",
    "services": "service", "svc": "service",
    "nodes": "node", "no": "node",
    "namespaces": "namespace", "ns": "namespace",
}


def resolve(name: str) -> MachineDef:
    """A definition by name, kind or kubectl short name (``pod``, ``Pod``, ``svc``...)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    for canonical, d in MACHINES.items():
        if key in (canonical, d.kind.lower()):
            return d
    raise KeyError(f"unknown machine {name!r}; choose one of: {', '.join(MACHINES)}")


@cache
def live(name: str) -> LiveMachine:
    """The shared ``transitions`` machine for a lifecycle (engine executor)."""
    return LiveMachine(resolve(name))


@cache
def compiled(name: str) -> CompiledMachine:
    """The compiled transition table for a lifecycle (model checker executor)."""
    return compile_machine(resolve(name))


__all__ = [
    "KUBERNETES_FINALIZER",
    "MACHINES",
    "NAMESPACE",
    "NODE",
    "POD",
    "RC",
    "SERVICE",
    "BackOffPolicy",
    "CompiledMachine",
    "Guard",
    "Lifecycle",
    "LiveMachine",
    "MachineDef",
    "State",
    "StateGroup",
    "Transition",
    "Trigger",
    "compiled",
    "live",
    "resolve",
]
