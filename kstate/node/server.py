"""The node agent's HTTP endpoint: container logs for ``kubectl logs``, and the streams
of ``kubectl exec|attach|port-forward`` (``kstate.node.streams``).

Where it sits: ``kubectl logs`` -> API server (``/api/v1/namespaces/<ns>/pods/<pod>/log``)
-> **this endpoint** (``/containerLogs/<ns>/<pod>/<container>``, the kubelet's path and
query parameters) -> ``runtime.logs``. The API server finds it through the Node the agent
registered: the ``kstate.io/agent-url`` annotation, or an address plus
``status.daemonEndpoints.kubeletEndpoint.Port`` (see ``kstate.api.server.logs``).

What it answers is delegated to a :class:`LogSource` (a node agent, or a simulated
cluster routing to many), so one server can front one node or a thousand simulated ones.

Query parameters: ``follow``, ``tailLines``, ``previous``, ``limitBytes``, ``timestamps``,
``sinceSeconds`` and ``sinceTime`` (RFC 3339), as the kubelet reads them. Plain HTTP on
loopback by default: this is a single-host system and the API server is the only client.

>>> # server = AgentServer(agent, port=0); url = await server.start(); ...; await server.stop()
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

from kstate.clock import Clock, RealClock
from kstate.errors import BadRequest, KstateError, NotFound
from kstate.node.streams import PodLocator, handle_exec, handle_port_forward

log = logging.getLogger("kstate.node.server")

_TRUE = ("true", "1", "")


class LogSource(PodLocator, Protocol):
    """Whoever knows which container a (namespace, pod, container) names."""

    def container_log(self, namespace: str, pod: str, container: str, *, previous: bool,
                      tail: int | None, follow: bool, since: float | None = None,
                      timestamps: bool = False) -> AsyncIterator[bytes]:
        """Log lines; raises ``NotFound`` / ``BadRequest`` before the first line."""
        ...


class AgentServer:
    """An aiohttp server for :class:`LogSource` on ``host:port`` (port 0: any free port)."""

    def __init__(self, source: LogSource, host: str = "127.0.0.1", port: int = 10250, *,
                 clock: Clock | None = None) -> None:
        self.source = source
        #: The runtime's time: ``sinceSeconds`` counts back from its now.
        self.clock: Clock = clock or RealClock()
        self.host = host
        self.port = port
        self._runner: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> str:
        """Listen; returns the base URL (with the real port when 0 was asked for)."""
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", self._healthz)
        for verb in ("exec", "attach"):
            app.router.add_get(f"/{verb}/{{namespace}}/{{pod}}/{{container}}",
                               functools.partial(handle_exec, locator=self.source))
        app.router.add_get("/portForward/{namespace}/{pod}",
                           functools.partial(handle_port_forward, locator=self.source))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _healthz(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(text="ok")

    async def _logs(self, request: Any) -> Any:
        from aiohttp import web

        info = request.match_info
        query = request.query
        try:
            tail = _int(query, "tailLines")
            limit = _int(query, "limitBytes")
            since = _since(query, self.clock.now())
            lines = self.source.container_log(
                info["namespace"], info["pod"], info["container"],
                previous=query.get("previous") in _TRUE if "previous" in query else False,
                tail=tail,
                follow=query.get("follow") in _TRUE if "follow" in query else False,
                since=since, timestamps=query.get("timestamps", "false") in _TRUE)
            first = await anext(lines, b"")  # errors surface before the headers go out
        except NotFound as err:
            return web.Response(status=404, text=f"{err}\n")
        except BadRequest as err:
            return web.Response(status=400, text=f"{err}\n")
        except KstateError as err:
            return web.Response(status=503, text=f"{err}\n")
        # No length known up front: aiohttp chunks for HTTP/1.1, closes for HTTP/1.0.
        response = web.StreamResponse(status=200,
                                      headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        sent = 0
        try:
            chunk = first
            while chunk:
                if limit is not None and sent + len(chunk) >= limit:
                    await response.write(chunk[:limit - sent])
                    break
                await response.write(chunk)
                sent += len(chunk)
                chunk = await anext(lines, b"")
        except (ConnectionResetError, KstateError) as err:
            log.debug("log stream of %s ended: %s", request.path, err)
        finally:
            await lines.aclose()  # type: ignore[attr-defined]
        return response


def _since(query: Any, now: float) -> float | None:
    """``sinceSeconds`` (back from ``now``) or ``sinceTime`` (RFC 3339) as epoch seconds."""
    seconds = _int(query, "sinceSeconds")
    if seconds is not None:
        return now - seconds
    if "sinceTime" not in query:
        return None
    try:
        return datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadRequest(f"sinceTime must be an RFC 3339 time, not {query['sinceTime']!r}"
                         ) from None


def _int(query: Any, name: str) -> int | None:
    if name not in query:
        return None
    value = query[name]
    if not value.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


__all__ = ["AgentServer", "LogSource"]
