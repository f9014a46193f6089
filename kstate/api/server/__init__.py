"""The Kubernetes-compatible API server: resource semantics, HTTP, auth, embedding.

Where it sits: the runtime path's second step (ARCHITECTURE §2) — everything that
changes an object comes through here, from kubectl and the Python client over HTTPS, or
from in-process components through ``kstate.api.client.LocalClient``::

    kubectl / client --HTTPS--> http.HttpApi --\\
                                                 >-- core.ApiCore --> store
    LocalClient (daemon, stateful tests) ------/

* ``core`` — ``ApiCore``: get/list/create/update/patch/delete/watch, subresources,
  admission (defaults, validation, lifecycle machines, Service allocation);
* ``http`` — the aiohttp application (routing, content negotiation, Table, watch
  streams, Status errors); ``server`` — ``ApiServer`` (TLS, tokens, kubeconfig) and
  ``kstate apiserver``;
* ``auth``, ``certs``, ``discovery``, ``openapi``, ``tables``, ``patch``,
  ``selectors``, ``alloc``, ``logs``, ``metrics``, ``requestinfo`` — one concern each.

See docs/apiserver.md.
"""

from __future__ import annotations

from kstate.api.server.alloc import NetworkConfig
from kstate.api.server.auth import Authenticator, User
from kstate.api.server.core import (
    ApiCore,
    Deleted,
    ObjectList,
    WatchEvent,
    WatchStream,
    WriteOptions,
)
from kstate.api.server.http import HttpApi
from kstate.api.server.selectors import Selection, selection
from kstate.api.server.server import ApiServer, ServerConfig, run_apiserver, tune_gc

__all__ = [
    "ApiCore",
    "ApiServer",
    "Authenticator",
    "Deleted",
    "HttpApi",
    "NetworkConfig",
    "ObjectList",
    "Selection",
    "ServerConfig",
    "User",
    "WatchEvent",
    "WatchStream",
    "WriteOptions",
    "run_apiserver",
    "selection",
    "tune_gc",
]
