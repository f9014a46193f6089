"""``kstate verify SCENARIO --explore``: walk a model's state graph in a browser.

Where it sits: ``kstate.verify``, beside ``report`` — another way to read a model and a
check result. The CLI builds the model (and, unless a ``--json`` result file is given,
a checker run) and calls ``serve``; this module owns the small web server: one static
page (``explore.html``, no external scripts or fonts) and a JSON API over the *same*
``Model`` the checker explores. Stateright's Explorer and TLC's trace explorer are the
anchors.

Why it looks like this: a state is named by its *path* — the index of an initial state,
then at each step the index of the action taken among ``actions(state)``. Actions are
deterministic (the checker relies on that to rebuild traces), so a path is a stable URL
and no state needs to be stored: the explorer re-runs the model along the path (with a
small cache). A counterexample becomes a path too (``checker.locate``), so playing it
is walking that path step by step.

API (all JSON, GET):

* ``/api/model`` — the model's name, its properties, the check's status and the
  counterexamples as paths (``traces``);
* ``/api/state?path=0.3.1`` — the steps taken, the state (``model.describe``), the diff
  from the parent state, the enabled actions and each property's predicate there.
  A path that leaves the graph is a 400 naming the step.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.resources
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from aiohttp import web

from kstate.errors import KstateError, ModelError
from kstate.verify.checker import INIT, CheckResult, Kind, Model, Progress, locate
from kstate.verify.report import diff

#: States kept for re-walking paths: a page view needs the state and its parent.
CACHE_SIZE = 4096


@attrs.frozen
class Trace:
    """A counterexample (or witness) as a path through the explorer's graph."""

    property: str
    kind: str
    verdict: str
    path: tuple[int, ...]  # initial index, then one action index per step
    loop_at: int | None  # a lasso's cycle returns to this step (index into path)
    note: str = ""

    def to_json(self, index: int) -> dict[str, Any]:
        return {"id": index, "property": self.property, "kind": self.kind,
                "verdict": self.verdict, "path": list(self.path), "loopAt": self.loop_at,
                "steps": len(self.path), "note": self.note}


class Explorer:
    """The state graph of ``model``, addressed by paths, and the traces to play on it.

    ``check`` (optional) runs in a background thread when ``start`` is called — on its
    own model instance: the model's memo caches are not shared across threads — and
    its failing properties become traces as it finishes.
    """

    def __init__(self, model: Model[Any], *, traces: Sequence[Trace] = (),
                 check: Callable[[Callable[[Progress], None]], CheckResult] | None = None
                 ) -> None:
        self.model = model
        self.initial = list(model.initial_states())
        self.properties = list(model.properties())
        self.traces: list[Trace] = list(traces)
        self._check = check
        self._lock = threading.Lock()
        self.status = "none" if check is None else "pending"
        self.progress = ""
        self.summary = ""
        self.error = ""
        self._cache: collections.OrderedDict[tuple[int, ...], tuple[Any, list[tuple[str, Any]]]]
        self._cache = collections.OrderedDict()

    # ------------------------------------------------------------------ the check

    def start(self) -> threading.Thread | None:
        """Run the check (if any) in a daemon thread; the page polls ``/api/model``."""
        if self._check is None:
            return None
        self.status = "running"
        thread = threading.Thread(target=self._run_check, name="explorer-check", daemon=True)
        thread.start()
        return thread

    def _run_check(self) -> None:
        assert self._check is not None

        def progress(p: Progress) -> None:
            self.progress = p.line()
        try:
            result = self._check(progress)
            traces = self.traces_of(result)
        except Exception as exc:  # shown on the page: the thread must not die silently
            known = isinstance(exc, KstateError)
            self.error = str(exc) if known else f"{type(exc).__name__}: {exc}"
            self.status = "error"
            return
        with self._lock:
            self.traces.extend(traces)
            self.summary = result.summary()
            self.status = "done"

    def traces_of(self, result: CheckResult) -> list[Trace]:
        """Every failed (or witnessed) property's trace of ``result``, as paths here."""
        out = []
        for prop in result.properties:
            if not prop.trace:
                continue
            path, _ = locate(self.model, list(prop.trace) + list(prop.cycle))
            out.append(Trace(prop.name, prop.kind, prop.verdict.value, tuple(path),
                             len(prop.trace) - 1 if prop.cycle or prop.kind in _LIVE else None,
                             prop.note))
        return out

    # ------------------------------------------------------------------ the graph

    def _node(self, path: tuple[int, ...]) -> tuple[Any, list[tuple[str, Any]]]:
        """The state at ``path`` and its successors (cached, least recently used out)."""
        hit = self._cache.get(path)
        if hit is not None:
            self._cache.move_to_end(path)
            return hit
        if len(path) == 1:
            if not 0 <= path[0] < len(self.initial):
                raise ModelError(f"there are {len(self.initial)} initial states, no index "
                                 f"{path[0]}", model=self.model.label, field="path[0]")
            state = self.initial[path[0]]
        else:
            _, succ = self._node(path[:-1])
            if not 0 <= path[-1] < len(succ):
                raise ModelError(f"step {len(path) - 1} has {len(succ)} enabled actions, no "
                                 f"index {path[-1]}", model=self.model.label,
                                 field=f"path[{len(path) - 1}]")
            state = succ[path[-1]][1]
        node = (state, list(self.model.actions(state)))
        self._cache[path] = node
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return node

    def view(self, path: Sequence[int]) -> dict[str, Any]:
        """Everything the page shows for the state at ``path``."""
        if not path:
            raise ModelError("a path starts with an initial state's index", field="path")
        key = tuple(path)
        state, succ = self._node(key)
        steps = [{"action": INIT, "index": key[0]}]
        for i in range(1, len(key)):
            _, before = self._node(key[:i])
            steps.append({"action": before[key[i]][0], "index": key[i]})
        described = self.model.describe(state)
        changes: list[dict[str, Any]] = []
        if len(key) > 1:
            parent = self.model.describe(self._node(key[:-1])[0])
            changes = [{"field": f, "before": b, "after": a}
                       for f, b, a in diff(parent, described)]
        return {
            "path": list(key),
            "steps": steps,
            "state": described,
            "diff": changes,
            "actions": [{"index": j, "name": name, "loop": nxt == state}
                        for j, (name, nxt) in enumerate(succ)],
            "properties": [self._judge(p, state) for p in self.properties],
        }

    @staticmethod
    def _judge(prop: Any, state: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"name": prop.name, "kind": prop.kind.value,
                               "p": bool(prop.p(state))}
        if prop.q is not None:
            out["q"] = bool(prop.q(state))
        return out

    def about(self) -> dict[str, Any]:
        with self._lock:
            traces = [t.to_json(i) for i, t in enumerate(self.traces)]
        return {
            "model": self.model.label,
            "initial": len(self.initial),
            "properties": [{"name": p.name, "kind": p.kind.value} for p in self.properties],
            "check": {"status": self.status, "progress": self.progress,
                      "summary": self.summary, "error": self.error},
            "traces": traces,
        }


_LIVE = {k.value for k in Kind if k.liveness}


# --------------------------------------------------------------------------- web


def parse_path(text: str) -> list[int]:
    """``"0.3.1"`` -> ``[0, 3, 1]``; anything else is a ``ModelError`` on ``path``."""
    try:
        path = [int(part) for part in text.split(".")]
    except ValueError:
        raise ModelError(f"expected dot-separated action indexes like 0.3.1, got {text!r}",
                         field="path") from None
    if any(i < 0 for i in path):
        raise ModelError("indexes are >= 0", field="path")
    return path


def page() -> str:
    return importlib.resources.files("kstate.verify").joinpath("explore.html").read_text()


def app(explorer: Explorer) -> web.Application:
    """The explorer's web application: the page and its JSON API."""
    html = page()

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def about(_: web.Request) -> web.Response:
        return web.json_response(explorer.about())

    async def state(request: web.Request) -> web.Response:
        try:
            path = parse_path(request.query.get("path", "0"))
            return web.json_response(explorer.view(path))
        except ModelError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    application = web.Application()
    application.router.add_get("/", index)
    application.router.add_get("/api/model", about)
    application.router.add_get("/api/state", state)
    return application


async def start(explorer: Explorer, host: str = "127.0.0.1",
                port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve on ``host:port`` (0: any free port); returns the runner and the page's URL."""
    if isinstance(port, bool) or not 0 <= port <= 65535:
        raise ModelError(f"must be 0-65535 (0: any free port), got {port}", field="port")
    runner = web.AppRunner(app(explorer), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ModelError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         field="port") from None
    bound = runner.addresses[0][1]  # the port actually bound when 0 was asked
    return runner, f"http://{host}:{bound}/"


def serve(explorer: Explorer, port: int, announce: Callable[[str], None]) -> None:
    """Run the explorer until interrupted (Ctrl-C), on 127.0.0.1 only."""
    async def main() -> None:
        runner, url = await start(explorer, port=port)
        explorer.start()
        announce(url)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the user stops it
        asyncio.run(main())


__all__ = ["Explorer", "Trace", "app", "parse_path", "serve", "start"]
