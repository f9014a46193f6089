"""Label and field selector grammar."""

from __future__ import annotations

import pytest

from kstate.api.server.selectors import (
    parse_field_selector,
    parse_label_selector,
    selectable_fields,
)
from kstate.errors import BadRequest

LABELS = {"app": "web", "tier": "front", "rank": "3"}


@pytest.mark.parametrize(("text", "matches"), [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("missing!=x", True),
    ("app", True),
    ("!app", False),
    ("!missing", True),
    ("tier in (front, back)", True),
    ("tier notin (front)", False),
    ("missing notin (x)", True),
    ("rank>2", True),
    ("rank<2", False),
    ("app=web,tier=back", False),
    ("app=web, tier in (front)", True),
    ("example.com/team=x", False),
    ("app=", False),
    ("app==", False),
])
def test_label_selectors(text: str, matches: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize("text", [
    "app in (web", "app in web", "in (a)", "app=web,", "app notin ()", "app>x", "Bad Key=1",
    "app=bad value!", "a,,b", "(", "=x",
])
def test_bad_label_selectors_are_400(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_label_selector(text)


def test_field_selectors() -> None:
    sel = parse_field_selector("spec.nodeName=n1,status.phase!=Failed", "Pod")
    assert sel.matches({"spec.nodeName": "n1", "status.phase": "Running"})
    assert not sel.matches({"spec.nodeName": "n1", "status.phase": "Failed"})
    assert sel.exact("spec.nodeName") == "n1"
    escaped = parse_field_selector(r"metadata.name=a\,b", "Pod")
    assert escaped.matches({"metadata.name": "a,b"})
    assert "involvedObject.uid" in selectable_fields("Event")
    with pytest.raises(BadRequest, match="not supported"):
        parse_field_selector("spec.nodeName=x", "Service")
    with pytest.raises(BadRequest):
        parse_field_selector("justaword", "Pod")
