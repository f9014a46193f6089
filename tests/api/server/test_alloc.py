"""Service allocation: cluster IPs and node ports derived from the store, surviving a
restart, honouring requests, rejecting taken or out-of-range ones."""

from __future__ import annotations

import ipaddress

import attrs
import pytest

from kstate.api import ServicePort, with_spec
from kstate.api.server.alloc import NetworkConfig
from kstate.errors import InvalidObject
from kstate.store import open_store
from tests.api.server.conftest import running_core
from tests.api.server.helpers import SVC, svc


async def test_cluster_ip_and_node_ports_are_allocated() -> None:
    async with running_core() as core:
        plain = await core.create(svc("a"))
        ip = ipaddress.ip_address(plain.spec.cluster_ip)
        assert ip in ipaddress.ip_network("127.96.0.0/12")
        assert plain.spec.cluster_ips == (plain.spec.cluster_ip,)
        assert plain.spec.ports[0].node_port == 0
        exposed = await core.create(svc("b", type_="NodePort"))
        assert 30000 <= exposed.spec.ports[0].node_port <= 32767
        assert exposed.spec.cluster_ip != plain.spec.cluster_ip
        headless = await core.create(svc("c", cluster_ip="None"))
        assert headless.spec.cluster_ip == "None"


async def test_requested_values_are_honoured_or_refused() -> None:
    async with running_core() as core:
        first = await core.create(svc("a", type_="NodePort", node_port=30001,
                                      cluster_ip="127.96.0.10"))
        assert first.spec.ports[0].node_port == 30001
        assert first.spec.cluster_ip == "127.96.0.10"
        with pytest.raises(InvalidObject) as taken:
            await core.create(svc("b", type_="NodePort", node_port=30001))
        assert taken.value.causes[0].field == "spec.ports[0].nodePort"
        assert "already allocated" in taken.value.causes[0].message
        with pytest.raises(InvalidObject) as ip_taken:
            await core.create(svc("c", cluster_ip="127.96.0.10"))
        assert ip_taken.value.causes[0].field == "spec.clusterIP"
        with pytest.raises(InvalidObject, match="not in the valid range"):
            await core.create(svc("d", cluster_ip="10.0.0.1"))


async def test_allocations_survive_a_restart() -> None:
    store = open_store("memory://")
    try:
        async with running_core(store) as core:
            await core.create(svc("a", type_="NodePort", node_port=31000))
            ip = (await core.get(SVC, "default", "a")).spec.cluster_ip
        async with running_core(store) as restarted:
            with pytest.raises(InvalidObject, match="already allocated"):
                await restarted.create(svc("b", type_="NodePort", node_port=31000))
            with pytest.raises(InvalidObject, match="already allocated"):
                await restarted.create(svc("c", cluster_ip=ip))
    finally:
        await store.close()


async def test_configured_ranges() -> None:
    network = NetworkConfig(service_cidr="127.200.0.0/29", node_port_range=(31000, 31001))
    async with running_core(network=network) as core:
        made = [await core.create(svc(f"s{i}", type_="NodePort")) for i in range(2)]
        assert {m.spec.ports[0].node_port for m in made} == {31000, 31001}
        with pytest.raises(InvalidObject, match="range is full"):
            await core.create(svc("s3", type_="NodePort"))
        with pytest.raises(ValueError):
            NetworkConfig(service_cidr="not-a-cidr")


async def test_updates_keep_allocated_values() -> None:
    async with running_core() as core:
        created = await core.create(svc("a", type_="NodePort"))
        port = created.spec.ports[0]
        # A PUT without clusterIP / nodePort keeps them (Kubernetes' patchAllocatedValues).
        bare = with_spec(created, cluster_ip="", cluster_ips=(),
                         ports=(attrs.evolve(port, node_port=0),))
        kept = await core.update(bare)
        assert kept.spec.cluster_ip == created.spec.cluster_ip
        assert kept.spec.ports[0].node_port == port.node_port
        # A new port gets its own node port.
        more = with_spec(kept, ports=(*kept.spec.ports,
                                      ServicePort(name="b", port=81)))
        more = with_spec(more, ports=(attrs.evolve(more.spec.ports[0], name="a"),
                                      more.spec.ports[1]))
        grown = await core.update(more)
        assert grown.spec.ports[1].node_port and grown.spec.ports[1].node_port != port.node_port
        # Back to ClusterIP: untouched node ports are dropped.
        plain = await core.update(with_spec(grown, type="ClusterIP", external_traffic_policy=""))
        assert all(p.node_port == 0 for p in plain.spec.ports)
        with pytest.raises(InvalidObject, match="immutable"):
            await core.update(with_spec(plain, cluster_ip="127.96.0.99",
                                        cluster_ips=("127.96.0.99",)))
