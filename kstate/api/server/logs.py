"""``GET .../pods/<name>/log``: where a container's log lives, and the proxy to it.

Where it sits: the API server answers ``kubectl logs`` by proxying to the node agent of
the pod's node, exactly as Kubernetes' API server proxies to the kubelet's
``/containerLogs/<namespace>/<pod>/<container>`` endpoint (same path, same query
parameters: ``follow``, ``tailLines``, ``timestamps``, ``previous``, ``sinceSeconds``,
``limitBytes``).

How the node agent is found (kept simple on purpose, one rule):

1. the node's annotation ``kstate.io/agent-url`` (e.g. ``http://127.0.0.1:10250``), if
   set — node agents write it when they register; else
2. ``http://<address>:<port>`` with the node's first ``InternalIP`` (then ``Hostname``,
   then ``ExternalIP``) address and ``status.daemonEndpoints.kubeletEndpoint.Port``
   (Kubernetes' own fields).

>>> from kstate.api.objects import Node, NodeStatus, NodeAddress
>>> from kstate.api.frozen import freeze
>>> node = Node(status=NodeStatus(addresses=(NodeAddress(type="InternalIP",
...             address="10.0.0.5"),), extra=freeze(
...             {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}})))
>>> agent_log_url(node, "default", "web", "c")
'http://10.0.0.5:10250/containerLogs/default/web/c'
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Mapping

from kstate.api.objects import Node, Pod
from kstate.errors import BadRequest, NotFound, Unavailable

AGENT_URL_ANNOTATION = "kstate.io/agent-url"

#: Query parameters passed through to the node agent (with their value checks).
LOG_PARAMS = ("container", "follow", "previous", "timestamps", "tailLines", "sinceSeconds",
              "limitBytes", "sinceTime")
_INT_PARAMS = ("tailLines", "sinceSeconds", "limitBytes")
_BOOL_PARAMS = ("follow", "previous", "timestamps")


def agent_base_url(node: Node) -> str:
    """The node agent's base URL (``BadRequest`` if the node does not say: there is no
    log to get from it, which is the node's state, not a server failure)."""
    explicit = node.metadata.annotations.get(AGENT_URL_ANNOTATION)
    if explicit:
        return explicit.rstrip("/")
    addresses = {a.type: a.address for a in reversed(node.status.addresses)}
    host = next((addresses[t] for t in ("InternalIP", "Hostname", "ExternalIP")
                 if t in addresses), "")
    endpoints = node.status.extra.get("daemonEndpoints") or {}
    kubelet = endpoints.get("kubeletEndpoint") if hasattr(endpoints, "get") else None
    port = kubelet.get("Port") if kubelet is not None and hasattr(kubelet, "get") else None
    if not host or not isinstance(port, int) or not 0 < port < 65536:
        raise BadRequest(f"node {node.metadata.name!r} does not publish its agent's address "
                          f"(annotation {AGENT_URL_ANNOTATION} or an address plus "
                          "status.daemonEndpoints.kubeletEndpoint.Port)")
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def choose_container(pod: Pod, container: str) -> str:
    """The container a logs / exec / attach request means (``BadRequest`` otherwise):
    the one named, or the pod's only one when none is."""
    names = [c.name for c in pod.spec.containers]
    name = pod.metadata.name
    if not container:
        if len(names) != 1:
            raise BadRequest(f"a container name must be specified for pod {name}, "
                             f"choose one of: [{' '.join(names)}]")
        return names[0]
    if container not in names:
        raise BadRequest(f"container {container} is not valid for pod {name}")
    return container


def agent_log_url(node: Node, namespace: str, pod: str, container: str) -> str:
    quote = urllib.parse.quote
    return (f"{agent_base_url(node)}/containerLogs/{quote(namespace, safe='')}/"
            f"{quote(pod, safe='')}/{quote(container, safe='')}")


def log_query(params: Mapping[str, str]) -> dict[str, str]:
    """The checked query to forward (400 on a malformed number or boolean)."""
    out: dict[str, str] = {}
    for name in LOG_PARAMS:
        if name == "container" or name not in params:
            continue
        value = params[name]
        if name in _INT_PARAMS and not (value.isdigit() and len(value) < 19):
            raise BadRequest(f"{name} must be a non-negative integer, not {value!r}")
        if name in _BOOL_PARAMS and value not in ("true", "false", "1", "0", ""):
            raise BadRequest(f"{name} must be true or false, not {value!r}")
        out[name] = value
    return out


async def stream_log(url: str, query: Mapping[str, str], *, timeout: float | None = None
                     ) -> AsyncIterator[bytes]:
    """Chunks of the log from the node agent (``Unavailable`` if it cannot be reached)."""
    import aiohttp

    client_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5)
    try:
        async with aiohttp.ClientSession(timeout=client_timeout) as session, \
                session.get(url, params=dict(query)) as resp:
            if resp.status != 200:
                text = (await resp.text())[:500].strip()
                # The agent's 400 / 404 are the user's (a container with no previous
                # instance, a pod it does not run): pass them on as they are.
                if resp.status == 400:
                    raise BadRequest(text)
                if resp.status == 404:
                    raise NotFound(text)
                raise Unavailable(f"node agent answered {resp.status} for the log: {text}")
            async for chunk in resp.content.iter_any():
                yield chunk
    except aiohttp.ClientError as exc:
        raise Unavailable(f"cannot reach the node agent at {url}: {exc}") from None


__all__ = ["AGENT_URL_ANNOTATION", "agent_base_url", "agent_log_url", "choose_container",
           "log_query",
           "stream_log"]
