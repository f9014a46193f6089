"""Label and field selectors: parse ``?labelSelector=`` / ``?fieldSelector=`` and match.

Where it sits: the API server's list and watch paths (and the clients' query strings)
filter objects with these; ``kubectl get -l app=web``, ``kubectl describe`` (events by
``involvedObject.*``) and node agents (pods by ``spec.nodeName``) all rely on them.

Why it exists: Kubernetes' selector grammar has two dialects and a fixed set of
selectable fields per kind; answering a bad selector with a precise 400 (rather than an
empty list) is what the real API server does and what users need.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``,
``!a``, ``a>3``, ``a<3``, comma-separated (all must hold).

>>> parse_label_selector("app=web,tier in (front, back),!legacy").matches(
...     {"app": "web", "tier": "front"})
True
>>> parse_field_selector("spec.nodeName=node-1", "Pod").matches({"spec.nodeName": "node-1"})
True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from kstate.api.meta import KubeObject
from kstate.api.validation import label_value, qualified_name
from kstate.errors import BadRequest

# ------------------------------------------------------------------ label selectors


@attrs.frozen
class Requirement:
    """One term of a label selector."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op, value = self.op, labels.get(self.key)
        if op == "exists":
            return value is not None
        if op == "!":
            return value is None
        if op in ("=", "in"):
            return value is not None and value in self.values
        if op in ("!=", "notin"):
            return value is None or value not in self.values
        if value is None:
            return False
        try:
            have, want = int(value), int(self.values[0])
        except ValueError:
            return False
        return have > want if op == ">" else have < want


@attrs.frozen
class LabelSelector:
    """All requirements must hold; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


EVERYTHING = LabelSelector()

_TOKEN = re.compile(
    r"\s*(?:(?P<paren>[(),])|(?P<op>==|!=|=|>|<|!)|(?P<word>[^\s(),=!<>]+))"
)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise BadRequest(f"unable to parse requirement: invalid label selector {text!r}")
        pos = m.end()
        out.append(m.group("paren") or m.group("op") or m.group("word"))
    return out


def _check_key(key: str, text: str) -> str:
    problem = qualified_name(key)
    if problem:
        raise BadRequest(f"unable to parse requirement: invalid label key {key!r}: {problem}")
    return key


def _check_value(value: str) -> str:
    problem = label_value(value)
    if problem:
        raise BadRequest(
            f"unable to parse requirement: invalid label value: {value!r}: {problem}"
        )
    return value


def parse_label_selector(text: str) -> LabelSelector:
    """Parse Kubernetes' label selector syntax; ``BadRequest`` (400) saying what is wrong."""
    if not text or not text.strip():
        return EVERYTHING
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def need(what: str) -> str:
        nonlocal i
        if i >= len(toks):
            raise BadRequest(f"unable to parse requirement: expected {what} in {text!r}")
        tok = toks[i]
        i += 1
        return tok

    while i < len(toks):
        tok = need("a key")
        if tok == "!":
            reqs.append(Requirement(_check_key(need("a key"), text), "!"))
        else:
            key = _check_key(tok, text)
            nxt = toks[i] if i < len(toks) else ","
            if nxt == ",":
                reqs.append(Requirement(key, "exists"))
            elif nxt in ("=", "=="):
                i += 1
                value = toks[i] if i < len(toks) and toks[i] not in (",", "(", ")") else ""
                if value:
                    i += 1
                reqs.append(Requirement(key, "=", (_check_value(value),)))
            elif nxt == "!=":
                i += 1
                value = toks[i] if i < len(toks) and toks[i] not in (",", "(", ")") else ""
                if value:
                    i += 1
                reqs.append(Requirement(key, "!=", (_check_value(value),)))
            elif nxt in (">", "<"):
                i += 1
                value = need("an integer")
                if not value.lstrip("-").isdigit():
                    raise BadRequest(
                        f"unable to parse requirement: {value!r} is not an integer"
                        f" (in {text!r})")
                reqs.append(Requirement(key, nxt, (value,)))
            elif nxt in ("in", "notin"):
                i += 1
                if need("'('") != "(":
                    raise BadRequest(f"unable to parse requirement: expected '(' after "
                                     f"{nxt!r} in {text!r}")
                values: list[str] = []
                while True:
                    tok = need("')'")
                    if tok == ")":
                        break
                    if tok == ",":
                        continue
                    values.append(_check_value(tok))
                if not values:
                    raise BadRequest(f"unable to parse requirement: for 'in', 'notin' "
                                     f"operators, values set can't be empty (in {text!r})")
                reqs.append(Requirement(key, nxt, tuple(values)))
            else:
                raise BadRequest(f"unable to parse requirement: found {nxt!r}, expected "
                                 f"one of: in, notin, =, ==, !=, gt, lt (in {text!r})")
        if i < len(toks):
            if toks[i] != ",":
                raise BadRequest(f"unable to parse requirement: found {toks[i]!r}, "
                                 f"expected ',' (in {text!r})")
            i += 1
            if i == len(toks):
                raise BadRequest(f"unable to parse requirement: expected a requirement "
                                 f"after ',' (in {text!r})")
    return LabelSelector(tuple(reqs))


# ------------------------------------------------------------------ field selectors


@attrs.frozen
class FieldTerm:
    field: str
    negate: bool
    value: str


@attrs.frozen
class FieldSelector:
    """Terms over a kind's selectable fields (``metadata.name=web,status.phase!=Failed``)."""

    terms: tuple[FieldTerm, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all((fields.get(t.field, "") == t.value) != t.negate for t in self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def exact(self, field: str) -> str | None:
        """The value ``field`` must equal, if the selector pins it (``metadata.name=x``)."""
        for t in self.terms:
            if t.field == field and not t.negate:
                return t.value
        return None


NOTHING_SELECTED = FieldSelector()


def _g(obj: Any, *path: str) -> str:
    for attr in path:
        obj = getattr(obj, attr, None)
        if obj is None:
            return ""
    if isinstance(obj, bool):
        return "true" if obj else "false"
    return str(obj)


FieldGetter = Callable[[Any], str]

#: Selectable fields per kind beyond ``metadata.name`` / ``metadata.namespace`` (the ones
#: the Kubernetes API server registers for these kinds).
_FIELDS: dict[str, dict[str, FieldGetter]] = {
    "Pod": {
        "spec.nodeName": lambda o: _g(o, "spec", "node_name"),
        "spec.restartPolicy": lambda o: _g(o, "spec", "restart_policy"),
        "spec.schedulerName": lambda o: _g(o, "spec", "scheduler_name"),
        "spec.serviceAccountName": lambda o: str(o.spec.extra.get("serviceAccountName", "")),
        "spec.hostNetwork": lambda o: _g(o, "spec", "host_network"),
        "status.phase": lambda o: _g(o, "status", "phase"),
        "status.podIP": lambda o: _g(o, "status", "pod_ip"),
        "status.nominatedNodeName": lambda o: str(
            o.status.extra.get("nominatedNodeName", "")),
    },
    "ReplicationController": {
        "status.replicas": lambda o: _g(o, "status", "replicas"),
    },
    "Node": {
        "spec.unschedulable": lambda o: _g(o, "spec", "unschedulable"),
    },
    "Namespace": {
        "status.phase": lambda o: _g(o, "status", "phase"),
    },
    "Event": {
        "involvedObject.kind": lambda o: _g(o, "involved_object", "kind"),
        "involvedObject.namespace": lambda o: _g(o, "involved_object", "namespace"),
        "involvedObject.name": lambda o: _g(o, "involved_object", "name"),
        "involvedObject.uid": lambda o: _g(o, "involved_object", "uid"),
        "involvedObject.apiVersion": lambda o: _g(o, "involved_object", "api_version"),
        "involvedObject.resourceVersion": lambda o: _g(o, "involved_object",
                                                       "resource_version"),
        "involvedObject.fieldPath": lambda o: _g(o, "involved_object", "field_path"),
        "reason": lambda o: _g(o, "reason"),
        "reportingComponent": lambda o: _g(o, "reporting_component"),
        "source": lambda o: _g(o, "source", "component"),
        "type": lambda o: _g(o, "type"),
    },
}


def selectable_fields(kind: str) -> list[str]:
    return ["metadata.name", "metadata.namespace", *_FIELDS.get(kind, {})]


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, escaped = [], [], False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_field_selector(text: str, kind: str) -> FieldSelector:
    """Parse ``field=value,field!=value``; fields a kind does not support are a 400
    ("field label not supported"), as in Kubernetes."""
    if not text or not text.strip():
        return NOTHING_SELECTED
    supported = _FIELDS.get(kind, {})
    terms = []
    for part in _split_unescaped(text, ","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", part, re.S)
        if m is None:
            raise BadRequest(f"invalid field selector: {part!r}: expected field=value, "
                             "field==value or field!=value")
        field, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3))
        if field not in ("metadata.name", "metadata.namespace") and field not in supported:
            raise BadRequest(
                f'field label not supported: {field} (selectable fields of {kind}: '
                f'{", ".join(selectable_fields(kind))})'
            )
        terms.append(FieldTerm(field, op == "!=", value))
    return FieldSelector(tuple(terms))


def field_values(obj: KubeObject, selector: FieldSelector) -> dict[str, str]:
    """The values of just the fields ``selector`` mentions (cheap for hot list paths)."""
    getters = _FIELDS.get(type(obj).KIND, {})
    out: dict[str, str] = {}
    for t in selector.terms:
        if t.field in out:
            continue
        if t.field == "metadata.name":
            out[t.field] = obj.metadata.name
        elif t.field == "metadata.namespace":
            out[t.field] = obj.metadata.namespace
        else:
            out[t.field] = getters[t.field](obj)
    return out


@attrs.frozen
class Selection:
    """A label and a field selector together: what a list or watch filters by."""

    labels: LabelSelector = EVERYTHING
    fields: FieldSelector = NOTHING_SELECTED

    def matches(self, obj: KubeObject) -> bool:
        if self.labels and not self.labels.matches(obj.metadata.labels):
            return False
        return not self.fields or self.fields.matches(field_values(obj, self.fields))

    def __bool__(self) -> bool:
        return bool(self.labels) or bool(self.fields)


def selection(kind: str, label_selector: str = "", field_selector: str = "") -> Selection:
    """Both selectors parsed for ``kind`` (400 on either being malformed)."""
    return Selection(parse_label_selector(label_selector),
                     parse_field_selector(field_selector, kind))


__all__ = [
    "EVERYTHING",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "Selection",
    "field_values",
    "parse_field_selector",
    "parse_label_selector",
    "selectable_fields",
    "selection",
]
