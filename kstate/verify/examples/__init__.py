"""Small models with published state counts, expressed in the checker's model API.

Where it sits: beside the checker, used by its cross-check tests and the benchmark
(``bench/verify``). They prove the checker counts exactly like TLC and Stateright do,
and show a model author the two styles of the API: readable attrs states
(``TwoPhase``, ``DieHard``) and bit-packed integer states (``PackedTwoPhase``).
"""
