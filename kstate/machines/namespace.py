"""The Namespace lifecycle.

Where it sits: ``kstate/machines`` — definitions only. Fired by the api server:
``delete`` (the namespace is marked and shows phase Terminating) and ``finalize`` (a
``/finalize`` write removed a finalizer from ``spec.finalizers``: the namespace
controller removes ``kubernetes`` once it found nothing left in the namespace);
explored by the model checker; drawn by ``kstate graph namespace``.

A Terminating namespace refuses new content (403, Kubernetes' NamespaceLifecycle
admission) while the controller deletes what it holds; it is Gone — removed from the
store — once no finalizer is left in ``spec.finalizers`` (Kubernetes'
``NamespaceSpec.finalizers``, not ``metadata.finalizers``). Emptiness is the
controller's decision (``kstate.control.namespace``, from a live list of every kind,
as the garbage collector decides a foreground owner has no dependents left): a
finalize on a stale view is how an object would outlive its namespace, which the
checker's namespace-delete scenario looks for.
"""

from __future__ import annotations

from kstate.machines.definition import Facts, Guard, MachineDef, State, Transition, Trigger

#: The finalizer the api server puts in ``spec.finalizers`` of every new namespace and
#: the namespace controller removes once the namespace is empty (Kubernetes'
#: ``FinalizerKubernetes``).
KUBERNETES_FINALIZER = "kubernetes"


def finalizers_left(f: Facts) -> bool:
    """``spec.finalizers`` still holds another finalizer than the one removed."""
    return bool(f["finalizers_left"])


NAMESPACE = MachineDef(
    name="namespace",
    kind="Namespace",
    doc="A namespace from creation to removal, as the api server and the namespace "
        "controller see it.",
    states=(
        State("Active", "accepts new content",
              visible={"phase": "Active", "deletionTimestamp": "unset"}),
        State("Terminating", "deletion requested: new content is refused (403) and the "
                             "namespace controller deletes everything in it",
              visible={"phase": "Terminating", "deletionTimestamp": "set"}),
        State("Gone", "empty and finalized: removed from the store", terminal=True,
              visible={"object": "absent"}),
    ),
    initial="Active",
    triggers=(
        Trigger("delete", "deletion requested", actor="apiserver"),
        Trigger("finalize", "a finalizer removed from spec.finalizers (/finalize)",
                facts={"finalizers_left": (False, True)}, actor="apiserver"),
    ),
    guards=(
        Guard("finalizers_left", finalizers_left, "another spec.finalizers entry remains"),
    ),
    transitions=(
        Transition("delete", ("Active",), "Terminating"),
        Transition("finalize", ("Terminating",), "Gone", unless=("finalizers_left",)),
        Transition("finalize", ("Terminating",), "Terminating", when=("finalizers_left",)),
    ),
)

__all__ = ["KUBERNETES_FINALIZER", "NAMESPACE"]
