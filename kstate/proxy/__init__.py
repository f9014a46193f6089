"""kstate.proxy — the service proxy (kube-proxy): Service/Endpoints -> TCP listeners
(ClusterIP, NodePort, pod-facing) -> ready pods.

Where it sits: the end of the runtime path (ARCHITECTURE §2), beside the node agent::

    api server -> informers (Services, Endpoints) -> ServiceProxy -> sockets -> pods

* ``routing``  — pure: ``compute_plan`` (listeners + routes) and ``pick`` (round-robin,
  ClientIP affinity); shared with the model checker.
* ``podports`` — pure: how containers reach Services (gateway + recorded pod port) and
  ``service_env``, the variables the node agent injects.
* ``proxy``    — ``ServiceProxy``: the asyncio plumbing. See ``docs/proxy.md``.
"""

from kstate.control.podports import (
    DEFAULT_POD_PORT_RANGE,
    POD_PORTS_ANNOTATION,
    assign_pod_ports,
    pod_port_refs,
    read_pod_ports,
    service_env,
)
from kstate.proxy.proxy import DEFAULT_CONNECT_TIMEOUTS, ProxyStatus, ServiceProxy
from kstate.proxy.routing import (
    DEFAULT_AFFINITY_TIMEOUT,
    Backend,
    Balancer,
    Listener,
    Plan,
    PortRef,
    Route,
    compute_plan,
    pick,
    ready_backends,
)

__all__ = [
    "DEFAULT_AFFINITY_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUTS",
    "DEFAULT_POD_PORT_RANGE",
    "POD_PORTS_ANNOTATION",
    "Backend",
    "Balancer",
    "Listener",
    "Plan",
    "PortRef",
    "ProxyStatus",
    "Route",
    "ServiceProxy",
    "assign_pod_ports",
    "compute_plan",
    "pick",
    "pod_port_refs",
    "read_pod_ports",
    "ready_backends",
    "service_env",
]
