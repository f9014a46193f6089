"""Pod startup benchmarks (``python -m bench.pods``); see ``__main__``."""
