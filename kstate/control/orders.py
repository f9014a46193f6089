"""Kubernetes' arbitrary orders: every order a controller may send its writes in.

Where it sits: ``kstate/control``, beside the reconcilers that write several objects of
one kind in a round — the node lifecycle (pods marked lost, evicted), the garbage
collector (dependents deleted) and the namespace controller (content deleted). Each
walks its view in the order the view lists the objects, and Kubernetes' informer cache
has no order (a map): so neither do those writes, and with a lagging watch the order
decides which event is still in flight when the round ends.

The engine takes the order its cache gives (``reconcile``, unchanged). The model checker
lists its caches in key order — its successors are a function of the state — and
explores ``every_order`` (each module's ``reconcile_choices``), which also keeps pods
interchangeable for symmetry: a renaming reorders the keys, never the set of choices. A
replay forces the order a counterexample took (``order_of`` names it, as the action's
label does).

Only the objects the round writes are permuted, and only among objects of one kind (a
watch delivers each kind in its own order): the others' positions change nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from kstate.api.meta import KubeObject
from kstate.control.commands import Bind, Command, Delete, DeleteIfGone, Evict, Update

#: (kind, namespace, name) of an object
Target = tuple[str, str, str]


def written(command: Command) -> Target | None:
    """The object ``command`` writes (``None``: a creation, an event, local memory)."""
    if isinstance(command, Update):
        return _target(command.obj)
    if isinstance(command, Delete):
        return command.kind, command.namespace, command.name
    if isinstance(command, Evict | Bind):
        return "Pod", command.namespace, command.name
    if isinstance(command, DeleteIfGone):
        ref = command.dependent
        return ref.kind, ref.namespace, ref.name
    return None


def order_of(commands: Sequence[Command]) -> tuple[str, ...]:
    """The names of the objects ``commands`` write, of each kind they write several of,
    in the order of their first write: which order a round took (its action label)."""
    first = list(dict.fromkeys(t for t in map(written, commands) if t is not None))
    per_kind: dict[str, int] = {}
    for kind, _, _ in first:
        per_kind[kind] = per_kind.get(kind, 0) + 1
    return tuple(name for kind, _, name in first if per_kind[kind] > 1)


def every_order(reconcile: Callable[..., list[Command]], view: Any, field: str,
                *args: Any) -> list[list[Command]]:
    """``reconcile(view, *args)`` for every order of the objects of ``view.<field>`` that
    it writes, among those of one kind; distinct command lists only, the view's own
    order first (the engine's)."""
    first = reconcile(view, *args)
    objects: tuple[KubeObject, ...] = getattr(view, field)
    targets = {t for t in map(written, first) if t is not None}
    slots: dict[str, list[int]] = {}
    for i, obj in enumerate(objects):
        if _target(obj) in targets:
            slots.setdefault(type(obj).__name__, []).append(i)
    groups = [s for s in slots.values() if len(s) > 1]
    if not groups:
        return [first]
    out, seen = [first], {tuple(first)}
    for orders in itertools.islice(_product(groups, objects), 1, None):  # 1st: as given
        reordered = list(objects)
        for slot_list, order in zip(groups, orders, strict=True):
            for slot, obj in zip(slot_list, order, strict=True):
                reordered[slot] = obj
        commands = reconcile(attrs.evolve(view, **{field: tuple(reordered)}), *args)
        if tuple(commands) not in seen:
            seen.add(tuple(commands))
            out.append(commands)
    return out


def _product(groups: list[list[int]], objects: Sequence[KubeObject]
             ) -> Iterator[tuple[tuple[KubeObject, ...], ...]]:
    """Every combination of one order per group, the given orders first."""
    return itertools.product(*(itertools.permutations([objects[i] for i in g])
                               for g in groups))


def _target(obj: KubeObject) -> Target:
    return type(obj).__name__, obj.metadata.namespace, obj.metadata.name


__all__ = ["Target", "every_order", "order_of", "written"]
