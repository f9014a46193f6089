"""The store: kstate's single source of truth, a revisioned key-value store like etcd v3.

Where it sits: at the bottom of the runtime path (api server -> **store** -> watch ->
informers). Every other component can be killed and rebuilt from what is stored here.

Why it exists: to give the API server one contract — :class:`Backend` — over three
interchangeable backends, chosen by URL through a small registry:

=================================  =====================================================
``memory://``                      in-process, not durable (unit tests)
``sqlite:///abs/path/state.db``    the default: one durable file (``sqlite://rel/path``
                                   is relative to the working directory)
``etcd://host:port[,host:port]``   a real etcd v3 cluster, with failover across members
=================================  =====================================================

Options come as keyword arguments or URL query parameters
(``sqlite:///var/lib/kstate/state.db?history=50000``).

>>> import asyncio
>>> async def demo() -> int:
...     async with open_store("memory://") as store:
...         kv = await store.create("/registry/pods/default/web", b"{}")
...         return kv.mod_revision
>>> asyncio.run(demo())
2
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from kstate.errors import UsageError
from kstate.store.base import (
    KEY_ROOT,
    MAX_VALUE_BYTES,
    Backend,
    Event,
    EventType,
    Guard,
    KeyValue,
    ListResult,
    check_key,
    check_prefix,
)
from kstate.store.watch import Watch

__all__ = [
    "KEY_ROOT",
    "MAX_VALUE_BYTES",
    "Backend",
    "Event",
    "EventType",
    "Guard",
    "KeyValue",
    "ListResult",
    "Watch",
    "check_key",
    "check_prefix",
    "open_store",
    "register_backend",
]

Opener = Callable[[urllib.parse.SplitResult, dict[str, Any]], Backend]
_OPENERS: dict[str, Opener] = {}


def register_backend(scheme: str, opener: Opener) -> None:
    """Make ``scheme://...`` URLs open with ``opener(parsed_url, options)``."""
    _OPENERS[scheme] = opener


def open_store(url: str, **options: Any) -> Backend:
    """Open the store at ``url``; keyword options override URL query parameters.

    Raises ``UsageError`` for an unknown scheme or malformed URL, and the backend's
    typed errors (``Unavailable``, ``StoreCorrupt``) when the store cannot be opened.
    """
    parsed = urllib.parse.urlsplit(url)
    opener = _OPENERS.get(parsed.scheme)
    if opener is None:
        known = ", ".join(f"{s}://" for s in sorted(_OPENERS))
        raise UsageError(f"unknown store URL {url!r}; use one of {known}")
    merged = {k: _option(v) for k, v in urllib.parse.parse_qsl(parsed.query)}
    merged.update(options)
    return opener(parsed, merged)


def _option(text: str) -> Any:
    """URL query values: integers, ``none``, ``true``/``false``, else the string."""
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        return text


def _open_memory(url: urllib.parse.SplitResult, options: dict[str, Any]) -> Backend:
    from kstate.store.memory import MemoryBackend

    return MemoryBackend(**options)


def _open_sqlite(url: urllib.parse.SplitResult, options: dict[str, Any]) -> Backend:
    from kstate.store.sqlite import SqliteBackend

    path = url.netloc + url.path  # sqlite:///abs -> "/abs"; sqlite://rel/x -> "rel/x"
    if not path or path.endswith("/"):
        raise UsageError(f"sqlite store URL {url.geturl()!r} names no file")
    return SqliteBackend(path, **options)


def _open_etcd(url: urllib.parse.SplitResult, options: dict[str, Any]) -> Backend:
    # Imported here so the etcd client library loads only when an etcd store is used.
    from kstate.store.etcd import EtcdBackend

    return EtcdBackend(url.netloc.split(","), **options)


register_backend("memory", _open_memory)
register_backend("sqlite", _open_sqlite)
register_backend("etcd", _open_etcd)
