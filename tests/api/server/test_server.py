"""``ApiServer``: HTTPS with generated PKI, tokens file and kubeconfig, plain HTTP only on
loopback, restart keeping keys and tokens; and the pod log proxy to a node agent."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography import x509

from kstate.api import Namespace, Pod, with_meta
from kstate.api.client import HttpClient
from kstate.api.server import ApiServer, ServerConfig
from kstate.api.server.server import parse_listen
from kstate.errors import BadRequest, Unauthorized, UsageError
from tests.api.server.conftest import ADMIN, http_client, running_core
from tests.api.server.helpers import node, pod


async def test_https_server_writes_pki_tokens_and_kubeconfig(tmp_path: Path) -> None:
    async with running_core() as core:
        server = ApiServer(core, ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0",
                                              names=("kstate.local",)))
        url = await server.start()
        try:
            assert url.startswith("https://127.0.0.1:")
            for name in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "tokens.csv",
                         "admin.kubeconfig"):
                assert (tmp_path / name).exists(), name
            assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0
            cert = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert "kstate.local" in sans.get_values_for_type(x509.DNSName)
            config = yaml.safe_load(server.kubeconfig.read_text())
            assert config["clusters"][0]["cluster"]["server"] == url
            assert config["current-context"] == "kstate"

            ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
                async with s.get(f"{url}/healthz") as r:
                    assert r.status == 200
                async with s.get(f"{url}/api/v1/pods") as r:
                    assert r.status == 401
                token = server.admin_token
                async with s.get(f"{url}/api/v1/pods",
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 200
            untrusted = aiohttp.TCPConnector(ssl=ssl.create_default_context())
            async with aiohttp.ClientSession(connector=untrusted) as s:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await s.get(f"{url}/healthz")
            wrong = HttpClient(url, token="nope", ca_file=tmp_path / "ca.crt")
            with pytest.raises(Unauthorized):
                await wrong.list(Pod)
            await wrong.close()
        finally:
            await server.stop()
        # A restart keeps the CA, certificate and admin token.
        before = (tmp_path / "apiserver.crt").read_bytes()
        again = ApiServer(core, ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0",
                                             names=("kstate.local",)))
        await again.start()
        try:
            assert again.admin_token == server.admin_token
            assert (tmp_path / "apiserver.crt").read_bytes() == before
        finally:
            await again.stop()


async def test_plain_http_only_on_loopback(tmp_path: Path) -> None:
    async with running_core() as core:
        with pytest.raises(UsageError, match="loopback"):
            await ApiServer(core, ServerConfig(data_dir=tmp_path, listen="0.0.0.0:0",
                                               insecure_http=True)).start()
        server = ApiServer(core, ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0",
                                              insecure_http=True))
        url = await server.start()
        try:
            assert url.startswith("http://")
            client = HttpClient.from_kubeconfig(server.kubeconfig)
            listed = await client.list(Namespace)
            assert [ns.metadata.name for ns in listed.items] == [
                "default", "kube-node-lease", "kube-public", "kube-system"]
            await client.close()
        finally:
            await server.stop()


def test_listen_parsing() -> None:
    assert parse_listen("0.0.0.0:6443") == ("0.0.0.0", 6443)
    with pytest.raises(UsageError):
        parse_listen("localhost")
    with pytest.raises(UsageError):
        parse_listen("host:99999")


# ------------------------------------------------------------------ logs


@pytest.fixture
def agent_lines() -> list[str]:
    return [f"line {i}" for i in range(5)]


async def test_log_proxy_to_the_node_agent(agent_lines: list[str]) -> None:
    seen: list[dict[str, str]] = []
    more = asyncio.Event()

    async def container_logs(request: web.Request) -> web.StreamResponse:
        seen.append({"path": request.path, **request.query})
        lines = agent_lines
        if "tailLines" in request.query:
            lines = lines[-int(request.query["tailLines"]):]
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write("".join(f"{line}\n" for line in lines).encode())
        if request.query.get("follow") == "true":
            await more.wait()
            await response.write(b"followed\n")
        return response

    agent = web.Application()
    agent.router.add_get("/containerLogs/{ns}/{pod}/{container}", container_logs)
    runner = web.AppRunner(agent)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with running_core() as core, http_client(core) as client:
            await core.create(with_meta(node("n1"), annotations={
                "kstate.io/agent-url": f"http://127.0.0.1:{port}"}))
            await core.create(pod("web", node="n1"))
            base = "/api/v1/namespaces/default/pods/web/log"
            whole = await client.get(base, headers=ADMIN)
            assert whole.status == 200 and (await whole.text()).splitlines() == agent_lines
            tail = await client.get(f"{base}?tailLines=2&container=c", headers=ADMIN)
            assert (await tail.text()).splitlines() == agent_lines[-2:]
            assert seen[-1] == {"path": "/containerLogs/default/web/c", "tailLines": "2"}
            followed = await client.get(f"{base}?follow=true", headers=ADMIN)
            first = await asyncio.wait_for(followed.content.readline(), 5)
            assert first == b"line 0\n"
            more.set()
            rest = await asyncio.wait_for(followed.text(), 5)
            assert rest.endswith("followed\n")
            bad = await client.get(f"{base}?tailLines=x", headers=ADMIN)
            assert bad.status == 400
            wrong = await client.get(f"{base}?container=nope", headers=ADMIN)
            assert wrong.status == 400
            await core.create(pod("floating"))
            nowhere = await client.get("/api/v1/namespaces/default/pods/floating/log",
                                       headers=ADMIN)
            assert nowhere.status == 400
            await core.create(pod("lost", node="n2"))
            lost = await client.get("/api/v1/namespaces/default/pods/lost/log", headers=ADMIN)
            assert lost.status == 404
            await core.create(node("n3"))
            await core.create(pod("silent", node="n3"))
            with pytest.raises(BadRequest):
                await core.log_location("default", "silent")
    finally:
        await runner.cleanup()
