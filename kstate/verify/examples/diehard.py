"""The die-hard jugs puzzle (TLA+ ``DieHard.tla``): measure 4 gallons with jugs of 3 and 5.

Where it sits: a cross-check example for the checker. The invariant ``NotSolved``
(``big /= 4``) is *meant* to fail: its shortest counterexample — 7 states, 6 pours — is
the puzzle's solution. 16 states are reachable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from kstate.verify.checker.model import Model, Property, always


@attrs.frozen(order=True)
class Jugs:
    small: int  # 0..3 gallons
    big: int  # 0..5 gallons


class DieHard(Model[Jugs]):
    name = "DieHard"

    def initial_states(self) -> Iterable[Jugs]:
        return [Jugs(0, 0)]

    def actions(self, s: Jugs) -> Iterable[tuple[str, Jugs]]:
        # As in the TLA+ spec every pour is always enabled, even when it changes nothing.
        to_big = min(s.big + s.small, 5)
        to_small = min(s.big + s.small, 3)
        return [
            ("FillSmallJug", Jugs(3, s.big)),
            ("FillBigJug", Jugs(s.small, 5)),
            ("EmptySmallJug", Jugs(0, s.big)),
            ("EmptyBigJug", Jugs(s.small, 0)),
            ("SmallToBig", Jugs(s.small - (to_big - s.big), to_big)),
            ("BigToSmall", Jugs(to_small, s.big - (to_small - s.small))),
        ]

    def properties(self) -> Sequence[Property[Jugs]]:
        return [
            always("TypeOK", lambda s: 0 <= s.small <= 3 and 0 <= s.big <= 5),
            always("NotSolved", lambda s: s.big != 4),
        ]
