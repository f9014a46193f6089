"""``python -m bench.proxy``: the userspace proxy's cost on loopback (``bench_proxy``)."""

import sys

from bench.proxy.bench_proxy import cli

sys.exit(cli())
