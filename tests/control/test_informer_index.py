"""The informer's indexes (``add_index`` / ``by_index``) stay equal to the cache.

A stub client serves scripted lists and watch events to the real ``Informer``; after every
list and every watch batch, each group of the index must be exactly the cached objects
with that key, in cache order — including objects that change group (adopted, released),
go away, or vanish across a relist.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kstate.api.helpers import owner_reference, with_meta
from kstate.api.objects import Pod
from kstate.control.informer import Informer, object_key
from kstate.control.replication import claim_group
from tests.control.objects import pod, rc

OWNERS = {"a": rc("a", uid="uid-a"), "b": rc("b", uid="uid-b"), "": None}
INDEX = "claim"


class ScriptedClient:
    """``list`` returns the current objects; ``watch`` streams what happened since."""

    def __init__(self) -> None:
        self.objects: dict[str, Pod] = {}
        self.pending: list[tuple[str, Pod]] = []
        self.revision = 0

    def write(self, name: str, owner: str) -> None:
        self.revision += 1
        p = pod(name)
        owned = OWNERS[owner]
        p = with_meta(p, owner_references=(owner_reference(owned),) if owned else (),
                      resource_version=str(self.revision))
        event = "MODIFIED" if object_key(p) in self.objects else "ADDED"
        self.objects[object_key(p)] = p
        self.pending.append((event, p))

    def delete(self, name: str) -> None:
        gone = self.objects.pop(f"default/{name}", None)
        if gone is not None:
            self.revision += 1
            self.pending.append(("DELETED", with_meta(gone, resource_version=str(self.revision))))

    async def list(self, kind: Any, namespace: str = "", **_: Any) -> Any:
        self.pending.clear()  # a list is the state; what happened before it is in it
        return SimpleNamespace(items=list(self.objects.values()),
                               resource_version=str(self.revision))

    def watch(self, kind: Any, namespace: str = "", **_: Any) -> Any:
        events, self.pending = self.pending, []

        @contextlib.asynccontextmanager
        async def stream() -> AsyncIterator[Any]:
            async def each() -> AsyncIterator[tuple[str, Pod]]:
                for event in events:
                    yield event
            yield each()
        return stream()


def assert_index_matches_cache(informer: Informer[Pod]) -> None:
    cached = list(informer.cache.values())
    for value in {claim_group(p) for p in cached} | {("default", "uid-a"), ("default", "")}:
        assert informer.by_index(INDEX, value) == [p for p in cached
                                                   if claim_group(p) == value]
    pair = (("default", "uid-a"), ("default", ""))
    assert informer.by_index(INDEX, *pair) == [p for p in cached if claim_group(p) in pair]


NAMES = st.sampled_from(["p0", "p1", "p2", "p3", "p4"])
STEPS = st.lists(st.one_of(
    st.tuples(st.just("write"), NAMES, st.sampled_from(sorted(OWNERS))),
    st.tuples(st.just("delete"), NAMES, st.just("")),
    st.tuples(st.just("watch"), st.just(""), st.just("")),
    st.tuples(st.just("relist"), st.just(""), st.just(""))), max_size=40)


@hypothesis_settings(max_examples=200)
@given(STEPS, st.booleans())
def test_index_equals_the_cache_after_any_history(steps: list[tuple[str, str, str]],
                                                  index_first: bool) -> None:
    async def go() -> None:
        client = ScriptedClient()
        informer: Informer[Pod] = Informer(client, Pod)  # type: ignore[arg-type]
        if index_first:
            informer.add_index(INDEX, claim_group)
        client.write("p0", "a")
        await informer._list()
        if not index_first:  # an index added to a filled cache is built from it
            informer.add_index(INDEX, claim_group)
        for op, name, owner in steps:
            if op == "write":
                client.write(name, owner)
            elif op == "delete":
                client.delete(name)
            elif op == "watch":
                await informer._watch()
            else:
                await informer._list()
            assert_index_matches_cache(informer)
        await informer._watch()
        assert_index_matches_cache(informer)
        assert informer.cache == client.objects

    asyncio.run(go())


def test_by_index_reads_only_the_groups_asked_for() -> None:
    informer: Informer[Pod] = Informer(ScriptedClient(), Pod)  # type: ignore[arg-type]
    informer.add_index(INDEX, claim_group)
    assert informer.by_index(INDEX, ("default", "nobody")) == []
    with pytest.raises(ValueError, match="already exists"):
        informer.add_index(INDEX, claim_group)
