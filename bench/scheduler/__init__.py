"""Scheduler benchmark (see __main__.py): ``python -m bench.scheduler``."""
