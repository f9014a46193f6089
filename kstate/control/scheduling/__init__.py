"""The scheduler's machinery, behind the pure entry point ``kstate.control.scheduler``.

Where it sits: ``kstate/control/scheduling`` holds what ``scheduler.schedule`` is made of,
in the order a scheduling cycle uses it:

* ``facts`` — a Pod / Node parsed once into numbers (requests, allocatable, ports);
* ``nodeinfo`` — one node plus the pods placed on it, with running sums;
* ``snapshot`` — ``ClusterSnapshot``: every candidate node, assumed bindings, and numpy
  columns of the same numbers, updated functionally on every event;
* ``plugins`` — Kubernetes' filters and scores as small pure functions, the settings
  and weights, the FailedScheduling message;
* ``reference`` / ``vectorised`` — the same placement algorithm twice: plainly, and over
  numpy arrays for speed (held equal by property tests);
* ``queue`` — the scheduling queue (active / backoff / unschedulable) as a value;
* ``persistent`` — immutable containers with cheap updates, under snapshot and queue.
"""
