"""Store benchmark: SQLite (default backend) against a local etcd, same run, same disk.

Run ``.venv/bin/python -m bench.store`` (``--help`` for options). See ``__main__``.
"""
