"""``ApiServer``: the API server as an embeddable object, and ``kstate apiserver``.

Where it sits: the daemon's front door. ``kstate apiserver`` runs one on its own; the
all-in-one daemon creates an :class:`ApiCore` over its store, hands it to an
:class:`ApiServer` inside its own asyncio loop, and gives the same core to its
in-process components through ``LocalClient``::

    core = ApiCore(store, clock)
    server = ApiServer(core, ServerConfig(listen="127.0.0.1:6443", data_dir=path))
    url = await server.start()          # https://127.0.0.1:6443 (port 0: a free one)
    ...                                 # server.kubeconfig, server.admin_token, ...
    await server.stop()

Security defaults: HTTPS with a CA and serving certificate generated into the data
directory on first start; bearer tokens from ``<data-dir>/tokens.csv`` (created with an
admin token); a kubeconfig for that admin written to ``<data-dir>/admin.kubeconfig``.
Plain HTTP only with ``insecure_http=True`` and only on a loopback address.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
import ssl
from pathlib import Path

import attrs
from aiohttp import web

from kstate.api.server.auth import Authenticator, ensure_tokens_file
from kstate.api.server.certs import KUBECONFIG, ensure_pki, write_kubeconfig
from kstate.api.server.core import ApiCore
from kstate.api.server.http import DEFAULT_WATCH_TIMEOUT, MAX_BODY_BYTES, HttpApi
from kstate.api.server.metrics import Metrics
from kstate.errors import UsageError

log = logging.getLogger("kstate.api")

DEFAULT_LISTEN = "127.0.0.1:6443"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (loopback) -> (host, port).

    >>> parse_listen("127.0.0.1:6443"), parse_listen("[::1]:0"), parse_listen(":8080")
    (('127.0.0.1', 6443), ('::1', 0), ('127.0.0.1', 8080))
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT (e.g. 127.0.0.1:6443)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen
class ServerConfig:
    """How the server listens and where it keeps its keys, tokens and kubeconfig."""

    data_dir: Path
    listen: str = DEFAULT_LISTEN
    insecure_http: bool = False
    #: extra DNS names / IPs for the serving certificate
    names: tuple[str, ...] = ()
    tokens_file: Path | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    watch_timeout: float = DEFAULT_WATCH_TIMEOUT


class ApiServer:
    """The HTTP(S) server over an :class:`ApiCore`; ``start`` returns the URL."""

    def __init__(self, core: ApiCore, config: ServerConfig) -> None:
        self.core = core
        self.config = config
        self.metrics = Metrics()
        self.url = ""
        self.admin_token = ""
        self.kubeconfig: Path = config.data_dir / KUBECONFIG
        self.ca_file: Path | None = None
        self._runner: web.AppRunner | None = None

    @property
    def tokens_file(self) -> Path:
        return self.config.tokens_file or self.config.data_dir / "tokens.csv"

    async def start(self) -> str:
        """Prepare TLS and tokens, create default namespaces, listen; the base URL."""
        cfg = self.config
        host, port = parse_listen(cfg.listen)
        if cfg.insecure_http and not _is_loopback(host):
            raise UsageError(f"plain HTTP is only allowed on a loopback address, not {host!r};"
                             " drop --insecure-http to serve HTTPS")
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.admin_token = ensure_tokens_file(self.tokens_file)
        authenticator = Authenticator.from_file(self.tokens_file)
        ssl_context = None
        if not cfg.insecure_http:
            names = [n for n in (host, *cfg.names) if n not in ("0.0.0.0", "::")]
            pki = ensure_pki(cfg.data_dir, names)
            self.ca_file = pki.ca_cert
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(pki.cert, pki.key)
        await self.core.start()
        api = HttpApi(self.core, authenticator, metrics=self.metrics,
                      max_body_bytes=cfg.max_body_bytes, watch_timeout=cfg.watch_timeout)
        self._runner = web.AppRunner(api.app(), handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context,
                           backlog=1024, reuse_address=True)
        await site.start()
        bound_port = port
        server = site._server
        if server is not None and server.sockets:  # type: ignore[attr-defined]
            bound_port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        client_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        if ":" in client_host:
            client_host = f"[{client_host}]"
        scheme = "http" if cfg.insecure_http else "https"
        self.url = f"{scheme}://{client_host}:{bound_port}"
        write_kubeconfig(self.kubeconfig, self.url, self.admin_token, self.ca_file)
        log.info("kstate api server listening on %s", self.url)
        return self.url

    async def stop(self) -> None:
        """Close watches and connections, stop listening (the store stays open)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def tune_gc() -> None:
    """Collect young objects less often: a create allocates thousands of short-lived
    objects (decode, defaults, validation) that reference counting frees anyway, and
    with Python's default threshold (700) the collector runs every few requests and
    walks the API server's large, long-lived heap of cached objects. Measured: 15-25 %
    more creates/s and a lower p99. Process-wide, so the embedding daemon calls it once
    (``kstate apiserver`` does)."""
    gc.freeze()  # what exists after start-up is permanent: never scan it again
    gc.set_threshold(50_000, 20, 100)


async def run_apiserver(store_url: str, listen: str, data_dir: Path, *,
                        insecure_http: bool = False, names: tuple[str, ...] = (),
                        service_cidr: str | None = None,
                        ready: asyncio.Event | None = None,
                        announce: object = print) -> None:
    """``kstate apiserver``: open the store, serve until SIGINT/SIGTERM."""
    from kstate.api.server.alloc import NetworkConfig
    from kstate.store import open_store

    try:
        network = NetworkConfig(service_cidr=service_cidr) if service_cidr else NetworkConfig()
    except ValueError as exc:
        raise UsageError(f"--service-cidr: {exc}") from None
    store = open_store(store_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    core = ApiCore(store, network=network)
    try:
        server = ApiServer(core, ServerConfig(data_dir=data_dir, listen=listen,
                                              insecure_http=insecure_http, names=names))
        url = await server.start()
        tune_gc()
        if callable(announce):
            announce(f"kstate api server listening on {url}")
            announce(f"kubeconfig: {server.kubeconfig}")
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            await server.stop()
    finally:
        await core.close()
        await store.close()


__all__ = ["DEFAULT_LISTEN", "ApiServer", "ServerConfig", "parse_listen", "run_apiserver",
           "tune_gc"]
