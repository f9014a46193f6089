"""The guard of "one definition": the checker may not grow its own copy of a decision.

``kstate verify``'s verdicts hold for the engine only while the checker runs the
engine's functions. Two ways a copy creeps back in, both visible in the source:

* a module under ``kstate/verify`` **assigns a lifecycle field itself** — phase,
  conditions, nodeName, deletionTimestamp, container states and statuses — instead of
  calling the engine function that does (``kstate.api.writes``, the machines, the
  reconcilers, the pod worker);
* it **decides an API outcome** — writes an outcome string such as ``"conflict"`` or
  ``"invalid"`` from its own comparison, instead of translating the error the shared
  rules raised (``kstate.control.executor.outcome_of``). Comparing against an outcome
  (``out.result != "ok"``) is reading one, and allowed.

The scan is over the AST, so it sees keyword arguments of ``attrs.evolve`` and of the
API object classes, attribute assignments, ``setattr``, the construction of condition
and container-state objects, and string constants outside comparisons. Exceptions are
listed below with the reason; docs/verify.md says how the rule is checked.
"""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kstate.api import meta, objects

ROOT = Path(__file__).resolve().parents[2]
VERIFY = ROOT / "kstate" / "verify"
BASE = "788193f"  # before issue 14: AbstractApi had its own merge, create and bind

#: Fields a lifecycle decision sets (snake_case attribute names of kstate.api.objects).
LIFECYCLE_FIELDS = frozenset({
    "phase", "conditions", "node_name", "deletion_timestamp",
    "deletion_grace_period_seconds", "container_statuses", "init_container_statuses",
    "state", "last_state", "waiting", "running", "terminated", "ready", "restart_count",
})
#: Objects whose construction is a lifecycle decision (a condition, a container state).
LIFECYCLE_CLASSES = frozenset({
    "PodCondition", "NodeCondition", "ContainerStatus", "ContainerState",
    "ContainerStateWaiting", "ContainerStateRunning", "ContainerStateTerminated",
})
#: Command outcomes (kstate.control.commands.Outcome) other than "ok".
OUTCOMES = frozenset({"conflict", "not_found", "exists", "invalid", "unavailable"})
#: Names whose calls build API objects (keywords there are field assignments).
API_CLASSES = frozenset(
    name for module in (objects, meta) for name in dir(module)
    if isinstance(getattr(module, name), type) and name[:1].isupper())

#: Modules out of scope, and why.
EXEMPT = {
    # Hypothesis generators of arbitrary objects for property tests: random inputs,
    # not a model of what any component does.
    "kstate/verify/strategies.py",
}
#: Findings that are not decisions, each with why (a stale entry fails the test).
ALLOWED: set[tuple[str, str]] = {
    # the name of a fault the live fuzz injects (a 409 the channel makes up), not an
    # outcome the verify layer decides
    ("kstate/verify/engine.py", "outcome 'conflict'"),
}


def _is_evolve(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "evolve") or (
        isinstance(func, ast.Name) and func.id == "evolve")


def _callee(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def findings(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) for every lifecycle field assignment and outcome decision."""
    tree = ast.parse(source)
    compared: set[int] = set()  # constants that are the operands of a comparison
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for part in (node.left, *node.comparators):
                for sub in ast.walk(part):
                    compared.add(id(sub))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _callee(node.func)
            if _is_evolve(node.func) or name in API_CLASSES:
                for kw in node.keywords:
                    if kw.arg in LIFECYCLE_FIELDS:
                        yield node.lineno, f"assigns {kw.arg}"
            if name in LIFECYCLE_CLASSES:
                yield node.lineno, f"builds a {name}"
            if name == "setattr" and len(node.args) >= 2 and isinstance(
                    node.args[1], ast.Constant) and node.args[1].value in LIFECYCLE_FIELDS:
                yield node.lineno, f"assigns {node.args[1].value}"
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in LIFECYCLE_FIELDS:
                    yield node.lineno, f"assigns {target.attr}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value in OUTCOMES and id(node) not in compared:
            yield node.lineno, f"outcome {node.value!r}"


def _modules() -> list[Path]:
    return sorted(p for p in VERIFY.rglob("*.py")
                  if p.relative_to(ROOT).as_posix() not in EXEMPT)


def test_no_module_under_verify_assigns_lifecycle_fields_or_decides_outcomes() -> None:
    found = []
    used = set()
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        for line, what in findings(path.read_text()):
            if (rel, what) in ALLOWED:
                used.add((rel, what))
                continue
            found.append(f"{rel}:{line}: {what}")
    assert not found, (
        "kstate/verify must call the engine's functions, not decide for itself "
        "(docs/verify.md, 'One definition'):\n  " + "\n  ".join(found))
    assert used == set(ALLOWED), f"allow-list entries no longer needed: {set(ALLOWED) - used}"


OLD_ABSTRACT_API = '''
def update(self, world, obj, subresource=""):
    current = world.get(key_of(obj))
    if current is None:
        return Outcome(world, "not_found")
    if current.metadata.resource_version != obj.metadata.resource_version:
        return Outcome(world, "conflict")

def bind(self, world, namespace, name, uid, node):
    scheduled = PodCondition(type="PodScheduled", status="True")
    bound = attrs.evolve(pod, spec=attrs.evolve(pod.spec, node_name=node))

def create(self, world, obj):
    created = attrs.evolve(created, status=attrs.evolve(created.status, phase="Pending"))
'''


def test_the_guard_flags_what_the_old_abstract_api_did() -> None:
    whats = {what for _, what in findings(OLD_ABSTRACT_API)}
    assert whats == {"outcome 'not_found'", "outcome 'conflict'", "builds a PodCondition",
                     "assigns node_name", "assigns phase"}
    # reading an outcome is not deciding one
    assert not list(findings('if out.result != "conflict" and x in ("exists",):\n  pass\n'))


def test_the_guard_flags_the_base_commits_abstract_api() -> None:
    """The AbstractApi of the commit before issue 14 (its own merge, create, bind)."""
    done = subprocess.run(["git", "show", f"{BASE}:kstate/verify/system/world.py"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"commit {BASE} is not in this checkout's history")
    whats = {what for _, what in findings(done.stdout)}
    assert {"outcome 'conflict'", "outcome 'not_found'", "outcome 'exists'",
            "assigns node_name", "assigns phase", "builds a PodCondition"} <= whats
