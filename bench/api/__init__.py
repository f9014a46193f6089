"""API server benchmark: creates over HTTPS / HTTP / in-process, lists, watch fan-out.

Run ``.venv/bin/python -m bench.api`` (``--help`` for options). See ``__main__``.
"""
