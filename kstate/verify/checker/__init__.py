"""kstate's explicit-state model checker: the generic core.

Where it sits: ``kstate.verify`` — the second executor of the one definition. A
``Model`` (initial states, named actions, properties, fairness, symmetry) goes in; a
``Checker`` explores it (BFS, DFS or random simulation, on one or all cores, within
bounds); a ``CheckResult`` (TLC-compatible counts, a verdict per property, counterexample
traces) comes out and round-trips through JSON. The Kubernetes system model and the
``kstate verify`` CLI are built on this API; the core imports nothing from kstate but
``kstate.errors``.

>>> from kstate.verify.examples.twophase import TwoPhase
>>> r = check(TwoPhase(3))
>>> r.distinct_states, r.states_generated, r.depth, r.ok
(288, 1146, 11, True)

See ``docs/checker.md``.
"""

from kstate.verify.checker.checker import Checker, Options, all_cores, check, run
from kstate.verify.checker.core import DEADLOCK, StopPolicy, Strategy
from kstate.verify.checker.model import (
    ALL_ACTIONS,
    INIT,
    Kind,
    Model,
    Property,
    action,
    always,
    converges,
    eventually,
    family_of,
    leads_to,
    sometimes,
    to_jsonable,
    true,
)
from kstate.verify.checker.por import Footprint, stubborn
from kstate.verify.checker.replay import locate, replay, validate_trace
from kstate.verify.checker.results import (
    CheckResult,
    Progress,
    PropertyResult,
    Step,
    StopReason,
    Verdict,
    steps_from_json,
)
from kstate.verify.checker.symmetry import Symmetry

__all__ = [
    "ALL_ACTIONS",
    "DEADLOCK",
    "INIT",
    "CheckResult",
    "Checker",
    "Footprint",
    "Kind",
    "Model",
    "Options",
    "Progress",
    "Property",
    "PropertyResult",
    "Step",
    "StopPolicy",
    "StopReason",
    "Strategy",
    "Symmetry",
    "Verdict",
    "action",
    "all_cores",
    "always",
    "check",
    "converges",
    "eventually",
    "family_of",
    "leads_to",
    "locate",
    "replay",
    "run",
    "sometimes",
    "steps_from_json",
    "stubborn",
    "to_jsonable",
    "true",
    "validate_trace",
]
