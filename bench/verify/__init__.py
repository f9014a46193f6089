"""Model-checker benchmarks (``python -m bench.verify``): ``scenarios`` and ``twophase``.

``bench_scenarios.py``: states/s and time to verdict for the shipped Kubernetes scenarios;
``bench_twophase.py``: TwoPhase commit against Spin. See ``__main__``.
"""
