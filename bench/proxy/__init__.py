"""Userspace proxy benchmark (``python -m bench.proxy``); see ``bench_proxy``."""
