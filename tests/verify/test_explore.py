"""The state-graph explorer (``kstate verify --explore``): its JSON API, the CLI that
serves it, and the page itself in headless Chromium following a counterexample to its
end (driven over the DevTools protocol; every wait is on a condition, never a sleep)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kstate.errors import ModelError
from kstate.verify.checker import check
from kstate.verify.explore import Explorer, parse_path, start
from kstate.verify.system import load_scenario
from tests.conftest import require_binary
from tests.verify.test_seeded_bugs import without_expectations

ROOT = Path(__file__).resolve().parents[2]
STALE_CACHE = ROOT / "specs" / "scenarios" / "stale-cache.yaml"
CORDONED = ("name: cordoned\nnodes: 1\nreplication_controllers: [{name: web, replicas: 1}]\n"
            "watch_lag: 0\nproperties: [converges, never_overcreates]\n"
            "script: [{cordon: node-1}, {scale: {rc: web, replicas: 2}}]\n")


def broken_model() -> Any:
    """stale-cache with a replication controller that forgets its own creations."""
    return load_scenario(STALE_CACHE).model(replication_fn=without_expectations,
                                            symmetry=False)


def broken_check(progress: Any) -> Any:
    return check(broken_model(), symmetry=False, stop="first-violation", max_depth=10,
                 progress=progress)


# --------------------------------------------------------------------------- the API


def test_a_path_names_a_state_its_steps_actions_and_diff() -> None:
    explorer = Explorer(broken_model())
    root = explorer.view([0])
    assert root["steps"] == [{"action": "<init>", "index": 0}] and root["diff"] == []
    assert [a["name"] for a in root["actions"]] == ["Sync(web)"]
    assert root["state"]["rcs"] == ["web Created desired=2 current=0 ready=0"]
    after = explorer.view([0, 0])
    assert [s["action"] for s in after["steps"]] == ["<init>", "Sync(web)"]
    changed = {d["field"]: d for d in after["diff"]}
    assert changed["pods"]["before"] == [] and len(changed["pods"]["after"]) == 2
    assert {p["name"]: p["p"] for p in after["properties"]}["never_overcreates"] is True


def test_a_counterexample_becomes_a_path_in_process_and_from_json() -> None:
    result = broken_check(None)
    explorer = Explorer(broken_model())
    (trace,) = explorer.traces_of(result)
    assert trace.property == "never_overcreates" and trace.verdict == "violated"
    assert trace.loop_at is None and len(trace.path) == len(result.property(
        "never_overcreates").trace)
    from_file = explorer.traces_of(type(result).from_json(json.loads(json.dumps(
        result.to_json()))))
    assert from_file == [trace]
    end = explorer.view(list(trace.path))
    assert {p["name"]: p["p"] for p in end["properties"]}["never_overcreates"] is False


def test_the_background_check_publishes_its_counterexamples() -> None:
    explorer = Explorer(broken_model(), check=broken_check)
    assert explorer.about()["check"]["status"] == "pending"
    thread = explorer.start()
    assert thread is not None
    thread.join(timeout=120)
    about = explorer.about()
    assert about["check"]["status"] == "done" and "violation" in about["check"]["summary"]
    assert [t["property"] for t in about["traces"]] == ["never_overcreates"]


@pytest.mark.parametrize(("text", "message"), [
    ("0.x", "dot-separated"), ("0.-1", ">= 0"), ("", "dot-separated")])
def test_malformed_paths_are_named(text: str, message: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_path(text)
    assert info.value.field == "path" and message in str(info.value)


async def test_the_server_answers_a_path_off_the_graph_with_a_clear_400() -> None:
    async with serving(Explorer(broken_model())) as url, aiohttp.ClientSession() as http:
        async with http.get(url + "api/state", params={"path": "0.7"}) as resp:
            assert resp.status == 400
            assert "step 1 has 1 enabled actions, no index 7" in (await resp.json())["error"]
        async with http.get(url + "api/state", params={"path": "3"}) as resp:
            assert resp.status == 400 and "initial states" in (await resp.json())["error"]
        async with http.get(url) as resp:
            assert resp.status == 200 and "kstate explorer" in await resp.text()


# --------------------------------------------------------------------------- the CLI


async def test_cli_serves_the_counterexamples_of_a_json_result(tmp_path: Path) -> None:
    scenario = tmp_path / "cordoned.yaml"
    scenario.write_text(CORDONED)
    done = subprocess.run([sys.executable, "-m", "kstate.cli", "verify", str(scenario),
                           "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=False)
    assert done.returncode == 1, done.stderr
    result = tmp_path / "result.json"
    result.write_text(done.stdout)
    # No SCENARIO argument: the result names its scenario.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kstate.cli", "verify", "--explore", "--port", "0",
        "--result", str(result), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        assert line.startswith("explorer on http://127.0.0.1:"), line
        url = line.split()[2]
        async with aiohttp.ClientSession() as http, http.get(url + "api/model") as resp:
            about = await resp.json()
        (trace,) = about["traces"]
        assert trace["property"] == "converges" and trace["loopAt"] == trace["steps"] - 1
        async with aiohttp.ClientSession() as http, http.get(
                url + "api/state", params={"path": ".".join(map(str, trace["path"]))}) as resp:
            end = await resp.json()
        assert [s["action"] for s in end["steps"]][1:3] == ["Cordon(node-1)", "Scale(web, 2)"]
    finally:
        proc.terminate()
        await proc.wait()


def test_cli_explore_bad_input_exits_2(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kstate.cli", "verify", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120,
                              check=False)
    done = run("--explore", "--result", str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "missing.json: cannot read" in done.stderr
    (tmp_path / "bad.json").write_text("{\"schema\": \"nope\"}")
    done = run(str(STALE_CACHE), "--explore", "--result", str(tmp_path / "bad.json"))
    assert done.returncode == 2 and "schema" in done.stderr
    done = run(str(STALE_CACHE), "--result", str(tmp_path / "bad.json"))
    assert done.returncode == 2 and "--result goes with --explore" in done.stderr
    done = run(str(STALE_CACHE), "--explore", "--port", "70000")
    assert done.returncode == 2 and "port: must be 0-65535" in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(str(STALE_CACHE), "--explore", "--port", str(port))
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_check_that_crashes_is_reported_not_swallowed() -> None:
    def crash(_progress: Any) -> Any:
        raise RuntimeError("model bug")
    explorer = Explorer(broken_model(), check=crash)
    thread = explorer.start()
    assert thread is not None
    thread.join(timeout=60)
    assert explorer.about()["check"] == {"status": "error", "progress": "", "summary": "",
                                         "error": "RuntimeError: model bug"}


# --------------------------------------------------------------------------- the page


@asynccontextmanager
async def serving(explorer: Explorer) -> AsyncIterator[str]:
    runner, url = await start(explorer)
    try:
        yield url
    finally:
        await runner.cleanup()


class DevTools:
    """A minimal Chrome DevTools protocol client over one websocket (flat sessions)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        await self.ws.send_json(msg)
        while True:
            data = await self.ws.receive_json()
            if data.get("id") == self.next_id:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                return data["result"]
            self.events.append(data)

    async def event(self, method: str) -> dict[str, Any]:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            data = await self.ws.receive_json()
            if data.get("method") == method:
                return data
            self.events.append(data)

    async def js(self, session: str, expression: str) -> Any:
        out = await self.call("Runtime.evaluate", session, expression=expression,
                              awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in out:
            raise AssertionError(f"{expression}: {out['exceptionDetails']}")
        return out["result"].get("value")


#: Resolves once the page has rendered ``route`` (body[data-route] is set after a render).
RENDERED = """new Promise((resolve) => {
  const done = () => document.body && document.body.dataset.route === %s;
  if (done()) return resolve(true);
  new MutationObserver((_, obs) => { if (done()) { obs.disconnect(); resolve(true); } })
    .observe(document.documentElement, {attributes: true, subtree: true});
})"""


@asynccontextmanager
async def chromium() -> AsyncIterator[DevTools]:
    binary = require_binary("chromium")
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}", "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stderr is not None
            ws_url = ""
            while not ws_url:  # Chromium announces its DevTools endpoint on stderr
                line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
                assert line, "chromium exited before opening DevTools"
                if line.startswith("DevTools listening on "):
                    ws_url = line.split()[-1]
            async with aiohttp.ClientSession() as http, http.ws_connect(
                    ws_url, max_msg_size=0) as ws:
                drain = asyncio.create_task(_drain(proc.stderr))
                try:
                    yield DevTools(ws)
                finally:
                    drain.cancel()
        finally:
            proc.terminate()
            await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():  # keep chromium's log pipe from filling up
        pass


async def test_the_page_follows_a_counterexample_to_its_end() -> None:
    explorer = Explorer(broken_model(), check=broken_check)
    thread = explorer.start()
    assert thread is not None
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    (trace,) = explorer.traces
    expected = [s["action"] for s in explorer.view(list(trace.path))["steps"]]
    async with serving(explorer) as url, chromium() as browser:
        await asyncio.wait_for(_follow(browser, url, expected), 120)


async def _follow(browser: DevTools, url: str, expected: list[str]) -> None:
    target = await browser.call("Target.createTarget", url="about:blank")
    session = (await browser.call("Target.attachToTarget", targetId=target["targetId"],
                                  flatten=True))["sessionId"]
    await browser.call("Page.enable", session)
    await browser.call("Page.navigate", session, url=url + "#/path/0")
    await browser.event("Page.loadEventFired")
    await browser.js(session, RENDERED % json.dumps("#/path/0"))
    # The counterexample is listed; open it.
    assert await browser.js(session, "document.querySelector('[data-trace]').textContent") \
        == "never_overcreates"
    await browser.js(session, "document.querySelector('[data-trace]').click()")
    last = len(expected) - 1
    for step in range(last + 1):
        route = f"#/trace/0/{step}"
        await browser.js(session, RENDERED % json.dumps(route))
        shown = await browser.js(session, """({
            position: document.getElementById('position').textContent,
            steps: [...document.querySelectorAll('#steps li a')].map(a => a.textContent),
            next: document.getElementById('next').disabled,
            actions: document.querySelectorAll('#actions li').length,
        })""")
        assert shown["position"] == f"never_overcreates: step {step} of {last}"
        assert shown["steps"] == expected[:step + 1]
        assert shown["next"] is (step == last) and shown["actions"] > 0
        if step < last:
            await browser.js(session, "document.getElementById('next').click()")
    end = await browser.js(session, """({
        end: document.getElementById('trace-end').textContent,
        verdict: [...document.querySelectorAll('#properties tr')]
            .find(r => r.textContent.startsWith('never_overcreates')).lastChild.textContent,
        diff: [...document.querySelectorAll('#diff td.mono:first-child')]
            .map(td => td.textContent),
    })""")
    assert end["end"] == "never_overcreates is violated here"
    assert end["verdict"] == "VIOLATED"
    assert "violations.overcreated" in end["diff"]
    # Stepping back walks the same path backwards.
    await browser.js(session, "document.getElementById('prev').click()")
    await browser.js(session, RENDERED % json.dumps(f"#/trace/0/{last - 1}"))
