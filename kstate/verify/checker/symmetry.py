"""Symmetry reduction helper: canonical representatives under renaming of identities.

Where it sits: a tool for models (``Model.canonical``). The checker itself only calls
``canonical`` and fingerprints the result; this module helps a model write one.

Why: resource managers of TwoPhase, the nodes of a cluster or the pods of one RC are
interchangeable — renaming them maps behaviours to behaviours — so the checker needs
to store one state per *orbit*. ``Symmetry.canonical`` returns the orbit's least member
(by ``key``) over all renamings, which is exact but costs k! per state; given a
``signature`` (what an identity looks like in the state, invariant under renaming) only
the renamings that sort identities by signature are tried, which is still exact, and
when the signature tells everything about an identity (``complete=True``) a single
sort suffices.

"Least" is a total order on states (``least``): ``key`` first, then, only between
different candidates with the same key (a hash collision), their structure
(``structure``). With ``key`` alone two members of one orbit could pick two different
candidates that collide — which is not exact.

>>> sym = Symmetry(("a", "b"), lambda s, r: tuple(sorted((r[x], v) for x, v in s)),
...                signature=lambda s, i: dict(s)[i], complete=True)
>>> sym.canonical((("a", 2), ("b", 1)))
(('a', 1), ('b', 2))
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from kstate.errors import ModelError

S = TypeVar("S", bound=Hashable)
I = TypeVar("I", bound=Hashable)  # noqa: E741 - the identity type


class Symmetry(Generic[S, I]):
    """The full permutation group over ``identities``.

    ``permute(state, renaming)`` must return ``state`` with every identity ``x`` replaced
    by ``renaming[x]`` (keys of maps, members of sets, fields that name one...).
    ``signature(state, x)`` (optional) describes identity ``x`` in ``state`` by a
    comparable value that does not mention identities; ``complete`` promises that two
    identities with equal signatures can be swapped without changing the state.
    ``key`` orders candidate representatives first (default ``hash``, so any hashable
    state works; the choice only has to be a function of the state); ``least`` breaks
    its ties.
    """

    def __init__(
        self,
        identities: Sequence[I],
        permute: Callable[[S, Mapping[I, I]], S],
        *,
        signature: Callable[[S, I], Any] | None = None,
        complete: bool = False,
        key: Callable[[S], Any] = hash,
    ) -> None:
        if len(set(identities)) != len(identities):
            raise ModelError("symmetric identities must be distinct", field="identities")
        if complete and signature is None:
            raise ModelError("complete=True needs a signature", field="complete")
        self.identities = tuple(identities)
        self.permute = permute
        self.signature = signature
        self.complete = complete
        self.key = key

    def renamings(self) -> Iterator[dict[I, I]]:
        """Every renaming of the identities (k! of them)."""
        for image in itertools.permutations(self.identities):
            yield dict(zip(self.identities, image, strict=True))

    def orbit(self, state: S) -> set[S]:
        """All states equivalent to ``state`` (brute force: for tests and tiny models)."""
        return {self.permute(state, r) for r in self.renamings()}

    def canonical(self, state: S) -> S:
        return least(self.candidates(state), self.key)

    def candidates(self, state: S) -> Iterator[S]:
        """The renamed states ``canonical`` chooses among: one per renaming that sorts
        the identities by signature (every renaming without a signature, a single one
        when ``complete``). The set is the same for every member of an orbit, which is
        what makes the least of it exact — and lets a larger group built from several
        symmetries (nodes, then pods) take the least over all combinations."""
        if self.signature is None:
            renamings: Iterable[dict[I, I]] = self.renamings()
        else:
            sig = self.signature
            renamings = sorting_renamings(
                self.identities, {x: sig(state, x) for x in self.identities},
                complete=self.complete)
        for r in renamings:
            yield self.permute(state, r)


def sorting_renamings(identities: Sequence[I], signatures: Mapping[I, Any], *,
                      complete: bool = False) -> Iterator[dict[I, I]]:
    """Every renaming that sorts ``identities`` by their ``signatures``: the j-th
    identity in signature order is renamed to ``identities[j]``. Identities with equal
    signatures can go in any order, so a tie of k gives k! renamings (one when
    ``complete`` promises that tied identities are interchangeable).

    >>> list(sorting_renamings("ab", {"a": 2, "b": 1}))
    [{'b': 'a', 'a': 'b'}]
    """
    ordered = sorted(identities, key=lambda x: signatures[x])
    if complete:
        yield dict(zip(ordered, identities, strict=True))
        return
    groups = [list(g) for _, g in itertools.groupby(ordered, key=lambda x: signatures[x])]
    for choice in itertools.product(*(itertools.permutations(g) for g in groups)):
        flat = [x for group in choice for x in group]
        yield dict(zip(flat, identities, strict=True))


def least(candidates: Iterable[S], key: Callable[[S], Any] = hash) -> S:
    """The least candidate in a total order: by ``key``, then — only between different
    candidates with the same least key — by ``structure``. (``min(..., key=hash)`` alone
    is not a total order: of two colliding candidates it returns whichever comes first,
    and the order of candidates depends on the orbit member.)"""
    best: list[S] = []
    best_key: Any = None
    for c in candidates:
        k = key(c)
        if not best or k < best_key:
            best, best_key = [c], k
        elif k == best_key and all(c != b for b in best):
            best.append(c)
    if not best:
        raise ModelError("no candidate representative", field="candidates")
    return best[0] if len(best) == 1 else min(best, key=structure)


def structure(value: Any) -> Any:
    """``value`` as nested tuples that compare: a deterministic order on values, with
    equal values equal, that does not depend on hashes or on the insertion order of
    maps and sets. Slow; ``least`` needs it only when keys collide."""
    if isinstance(value, (bool, int, float)):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if value is None:
        return (2,)
    cls = type(value)
    if attrs.has(cls):
        return (3, cls.__qualname__,
                tuple(structure(getattr(value, f.name)) for f in attrs.fields(cls) if f.eq))
    if isinstance(value, Mapping):
        return (4, tuple(sorted((structure(k), structure(v)) for k, v in value.items())))
    if isinstance(value, (set, frozenset)):
        return (5, tuple(sorted(structure(v) for v in value)))
    if isinstance(value, (tuple, list)):
        return (6, tuple(structure(v) for v in value))
    if isinstance(value, enum.Enum):
        return (7, cls.__qualname__, structure(value.value))
    return (8, cls.__qualname__, repr(value))
