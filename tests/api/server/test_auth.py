"""Authentication and authorization on every route the server has: no token -> 401,
an unknown token -> 401, view never writes (403), and the role matrix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kstate.api.server.auth import MATRIX, Authenticator, User, authorize, parse_tokens
from kstate.api.server.discovery import SERVED
from kstate.api.server.requestinfo import parse
from kstate.errors import Forbidden, Unauthorized, UsageError
from tests.api.server.conftest import http_client, running_core

METHODS = {"get": "GET", "list": "GET", "watch": "GET", "create": "POST", "update": "PUT",
           "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETE"}
READS = {"get", "list", "watch"}


def routes() -> Iterator[tuple[str, str, str]]:
    """(verb, method, path) for every verb of every resource and subresource served."""
    for served in SERVED.values():
        info = served.info
        root = f"/api/{info.version}" if not info.group else f"/apis/{info.api_version}"
        base = f"{root}/namespaces/default/{info.plural}" if info.namespaced \
            else f"{root}/{info.plural}"
        for verb in served.verbs:
            named = verb in ("get", "update", "patch", "delete")
            path = f"{base}/x" if named else base
            if verb == "watch":
                path += "?watch=1"
            yield verb, METHODS[verb], path
        for sub in served.subresources:
            for verb in sub.verbs:
                # exec / attach / portforward run something: authorized as a create
                # whichever method carries the upgrade.
                yield ("create" if sub.connect else verb), METHODS[verb], \
                    f"{base}/x/{sub.name}"


ROUTES = list(routes())
NON_RESOURCE = ["/api", "/api/v1", "/apis", "/apis/coordination.k8s.io",
                "/apis/coordination.k8s.io/v1", "/openapi/v2", "/openapi/v3",
                "/openapi/v3/api/v1", "/metrics"]
PUBLIC = ["/healthz", "/livez", "/readyz", "/version"]


def test_every_route_is_listed() -> None:
    assert len(ROUTES) > 60
    assert ("create", "POST", "/api/v1/namespaces/default/pods/x/binding") in ROUTES
    assert ("patch", "PATCH", "/api/v1/namespaces/default/replicationcontrollers/x/scale") \
        in ROUTES


async def test_no_token_and_bad_token_are_401_everywhere() -> None:
    async with running_core() as core, http_client(core) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": "Basic YWxpY2U6cHc="}):
            for verb, method, path in ROUTES:
                response = await client.request(method, path, headers=headers, json={})
                assert response.status == 401, (verb, path, headers)
                status = await response.json()
                assert status["kind"] == "Status" and status["reason"] == "Unauthorized"
                response.close()
            for path in NON_RESOURCE:
                assert (await client.get(path, headers=headers)).status == 401, path
        for path in PUBLIC:
            assert (await client.get(path)).status == 200, path


async def test_view_reads_but_never_writes() -> None:
    view = {"Authorization": "Bearer view-token"}
    async with running_core() as core, http_client(core) as client:
        for verb, method, path in ROUTES:
            response = await client.request(method, path, headers=view, json={})
            if verb in READS:
                assert response.status not in (401, 403), (verb, path, response.status)
            else:
                assert response.status == 403, (verb, path, response.status)
                assert (await response.json())["reason"] == "Forbidden"
            response.close()
        for path in NON_RESOURCE[:-1]:
            assert (await client.get(path, headers=view)).status == 200, path
        assert (await client.get("/metrics", headers=view)).status == 403


async def test_role_without_rules_and_admin() -> None:
    nobody = {"Authorization": "Bearer nobody-token"}
    admin = {"Authorization": "Bearer admin-token"}
    async with running_core() as core, http_client(core) as client:
        pods = await client.get("/api/v1/namespaces/default/pods", headers=nobody)
        message = (await pods.json())["message"]
        assert pods.status == 403
        assert message == ('pods is forbidden: User "nobody" cannot list resource "pods" in '
                           'API group "" in the namespace "default"')
        assert (await client.get("/api/v1", headers=nobody)).status == 200
        for verb, method, path in ROUTES:
            response = await client.request(method, path, headers=admin, json={})
            assert response.status not in (401, 403), (verb, path)
            response.close()


@pytest.mark.parametrize(("role", "verb", "path", "allowed"), [
    ("edit", "create", "/api/v1/namespaces/default/pods", True),
    ("edit", "create", "/api/v1/nodes", False),
    ("edit", "update", "/api/v1/namespaces/default/pods/x/status", False),
    ("edit", "patch", "/api/v1/namespaces/default/replicationcontrollers/x/scale", True),
    ("edit", "delete", "/api/v1/namespaces/x", False),
    ("node", "update", "/api/v1/nodes/x/status", True),
    ("node", "update", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/x",
     True),
    ("node", "delete", "/api/v1/namespaces/default/pods/x", True),
    ("node", "delete", "/api/v1/namespaces/default/replicationcontrollers/x", False),
    ("node", "create", "/api/v1/namespaces/default/pods/x/binding", False),
    ("scheduler", "create", "/api/v1/namespaces/default/pods/x/binding", True),
    ("scheduler", "create", "/api/v1/namespaces/default/pods", False),
    ("controller", "update", "/api/v1/namespaces/default/replicationcontrollers/x/status",
     True),
    ("controller", "create", "/api/v1/namespaces/default/pods", True),
    ("controller", "update", "/api/v1/namespaces/default/endpoints/x", True),
    ("controller", "create", "/api/v1/namespaces/default/services", False),
])
def test_role_matrix(role: str, verb: str, path: str, allowed: bool) -> None:
    user = User("u", groups=(role,))
    info = parse(METHODS[verb], path, {})
    if allowed:
        authorize(user, info)
    else:
        with pytest.raises(Forbidden):
            authorize(user, info)


def test_tokens_file_format() -> None:
    users = Authenticator(parse_tokens(
        '# comment\nt1,alice,1,"admin,extra"\nt2,bob,2\n\n'))
    alice = users.authenticate("Bearer t1")
    assert alice is not None and alice.roles == frozenset({"admin"})
    bob = users.authenticate("bearer t2")
    assert bob is not None and bob.roles == frozenset()
    assert users.authenticate(None) is None
    with pytest.raises(Unauthorized):
        users.authenticate("Bearer t3")
    with pytest.raises(UsageError, match="line 1"):
        parse_tokens("justatoken\n")
    assert set(MATRIX) == {"admin", "edit", "view", "node", "controller", "scheduler"}
