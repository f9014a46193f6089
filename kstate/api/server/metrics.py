"""``/metrics``: request counts and latency histograms in Prometheus' text format.

Where it sits: the HTTP layer records every request here (verb, resource, subresource,
code, duration); ``GET /metrics`` renders it. Names and labels follow the Kubernetes API
server's (``apiserver_request_total``, ``apiserver_request_duration_seconds``) so
existing dashboards and queries read kstate's numbers unchanged.

Hand-written rather than a client library: two metric families do not justify a
dependency, and the exposition format is a few lines.

>>> m = Metrics()
>>> m.observe("create", "pods", "", 201, 0.004)
>>> 'apiserver_request_total{code="201",resource="pods",subresource="",verb="create"} 1' \\
...     in m.render()
True
"""

from __future__ import annotations

import bisect
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

#: Verbs whose duration is the life of a stream, not service time (not in the histogram).
LONG_RUNNING = frozenset({"watch", "log"})


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class Metrics:
    """In-memory counters and histograms; cheap enough for every request."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self._hist: dict[tuple[str, str, str], list[int]] = {}
        self._sums: dict[tuple[str, str, str], float] = defaultdict(float)
        self.inflight_watches = 0

    def observe(self, verb: str, resource: str, subresource: str, code: int,
                seconds: float) -> None:
        self._counts[(verb, resource, subresource, str(code))] += 1
        if verb in LONG_RUNNING or (resource == "pods" and subresource == "log"):
            return
        key = (verb, resource, subresource)
        counts = self._hist.get(key)
        if counts is None:
            counts = self._hist[key] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sums[key] += seconds

    def render(self) -> str:
        lines = [
            "# HELP apiserver_request_total Counter of apiserver requests broken out by "
            "verb, resource, subresource and HTTP response code.",
            "# TYPE apiserver_request_total counter",
        ]
        for (verb, resource, sub, code), n in sorted(self._counts.items()):
            labels = _labels(verb=verb, resource=resource, subresource=sub, code=code)
            lines.append(f"apiserver_request_total{labels} {n}")
        lines += [
            "# HELP apiserver_request_duration_seconds Response latency distribution in "
            "seconds for each verb, resource and subresource (streams excluded).",
            "# TYPE apiserver_request_duration_seconds histogram",
        ]
        for (verb, resource, sub), counts in sorted(self._hist.items()):
            total = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                total += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                labels = _labels(verb=verb, resource=resource, subresource=sub, le=le)
                lines.append(f"apiserver_request_duration_seconds_bucket{labels} {total}")
            base = _labels(verb=verb, resource=resource, subresource=sub)
            lines.append(f"apiserver_request_duration_seconds_sum{base} "
                         f"{self._sums[(verb, resource, sub)]:.6f}")
            lines.append(f"apiserver_request_duration_seconds_count{base} {total}")
        lines += [
            "# HELP apiserver_longrunning_requests Number of open watch streams.",
            "# TYPE apiserver_longrunning_requests gauge",
            f'apiserver_longrunning_requests{{verb="watch"}} {self.inflight_watches}',
        ]
        return "\n".join(lines) + "\n"


__all__ = ["BUCKETS", "Metrics"]
