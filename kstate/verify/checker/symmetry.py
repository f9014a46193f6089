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

>>> sym = Symmetry(("a", "b"), lambda s, r: tuple(sorted((r[x], v) for x, v in s)),
...                signature=lambda s, i: dict(s)[i], complete=True)
>>> sym.canonical((("a", 2), ("b", 1)))
(('a', 1), ('b', 2))
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

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
    ``key`` orders candidate representatives (default ``hash``, so any hashable state
    works; the choice only has to be a function of the state).
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
        return min(self.candidates(state), key=self.key)

    def candidates(self, state: S) -> Iterator[S]:
        """The renamed states ``canonical`` chooses among: one per renaming that sorts
        the identities by signature (every renaming without a signature, a single one
        when ``complete``). The set is the same for every member of an orbit, which is
        what makes the least of it exact — and lets a larger group built from several
        symmetries (nodes, then pods) take the least over all combinations."""
        if self.signature is None:
            yield from (self.permute(state, r) for r in self.renamings())
            return
        sig = self.signature
        # Sort identities by signature (ties by their given order); identity number j of
        # the sorted list is renamed to identities[j].
        ranked = sorted(range(len(self.identities)),
                        key=lambda j: (sig(state, self.identities[j]), j))
        ordered = [self.identities[j] for j in ranked]
        if self.complete:
            yield self.permute(state, dict(zip(ordered, self.identities, strict=True)))
            return
        groups: list[list[I]] = []
        last: Any = object()
        for x in ordered:
            s = sig(state, x)
            if groups and s == last:
                groups[-1].append(x)
            else:
                groups.append([x])
                last = s
        for choice in itertools.product(*(itertools.permutations(g) for g in groups)):
            flat = [x for group in choice for x in group]
            yield self.permute(state, dict(zip(flat, self.identities, strict=True)))
