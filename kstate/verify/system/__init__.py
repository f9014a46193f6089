"""The Kubernetes system model: scenarios, the model, its properties and symmetry.

Where it sits: ``kstate.verify`` — built on the generic checker
(``kstate.verify.checker``) and on the engine's own reconcilers, pod worker and
lifecycle rules; ``kstate verify`` is its command line.
"""

from kstate.verify.system.model import FAIR, Settings, SystemModel
from kstate.verify.system.scenario import Scenario, load_scenario, parse_scenario

__all__ = ["FAIR", "Scenario", "Settings", "SystemModel", "load_scenario", "parse_scenario"]
