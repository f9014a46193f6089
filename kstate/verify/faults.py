"""What the engine's fault seam adds beside the channel: a component's own clock, and
readiness probes that fail on demand.

Where it sits: ``kstate.verify``, used only by :class:`~kstate.verify.engine.Engine`
(the rig of ``kstate fuzz`` and ``kstate verify --replay``). The watch and write faults
live on the engine's ``Channel`` (the client every component is given); these two are
the rest of Sieve's repertoire that a component sees through its other injected
dependencies:

* :class:`SkewedClock` — a component's clock, offset from the engine's: the node agent
  or the controller manager stamps and compares times a few seconds off, as on a real
  machine whose clock drifts within what NTP allows;
* :class:`ProbeFaults` — a prober in front of the agent's own that fails the readiness
  probes of chosen pods until a fake time passes (a pod that goes unready, then
  recovers).
"""

from __future__ import annotations

from kstate.api.objects import Probe
from kstate.clock import Clock, FakeClock
from kstate.node.probes import ProbeKind, Prober, ProbeTarget

#: The largest clock skew the fuzz gives one component, seconds. Kubernetes assumes
#: clocks agree to well under its timeouts: the node lease (renewed every 10 s) is judged
#: against a 40 s grace period, so 10 s of skew either way still leaves a healthy node
#: Ready with margin (10 s renew + 10 s skew < 40 s) — beyond that a skewed node is
#: indistinguishable from a dead one, in Kubernetes as here.
MAX_SKEW = 10.0


class SkewedClock:
    """The engine's fake clock, ``offset`` seconds off for one component.

    Only wall time moves (``now``: what a component stamps into objects and compares
    with stamps); ``monotonic`` and ``sleep`` are the engine's, so timers keep their
    length and the engine still drives every deadline.
    """

    def __init__(self, inner: FakeClock, offset: float = 0.0) -> None:
        self.inner = inner
        self.offset = offset

    def now(self) -> float:
        return self.inner.now() + self.offset

    def monotonic(self) -> float:
        return self.inner.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class ProbeFaults:
    """A prober that fails the readiness probes of the pods in ``failing`` (``ns/name``
    -> fake time until which they fail), and asks ``inner`` otherwise."""

    def __init__(self, inner: Prober, failing: dict[str, float], clock: Clock) -> None:
        self.inner = inner
        self.failing = failing
        self.clock = clock

    async def probe(self, kind: ProbeKind, target: ProbeTarget, probe: Probe,
                    timeout: float) -> bool:
        until = self.failing.get(target.pod_key)
        if kind is ProbeKind.READINESS and until is not None and self.clock.now() < until:
            return False
        return await self.inner.probe(kind, target, probe, timeout)


__all__ = ["MAX_SKEW", "ProbeFaults", "SkewedClock"]
