"""Verification: the model checker, the system model, properties, scenarios, the
Hypothesis stateful runs and lifecycle graphs.

Where it sits: above ``control`` (it runs the same reconcilers) and beside ``node`` /
``proxy``; it never imports a real store or runtime backend — the checker explores
abstract state, and the stateful runs use the in-memory store and the fake runtime.
"""
