"""``kstate`` — the command line: parse, call, print. Nothing else lives here.

Where it sits: the top layer (ARCHITECTURE §4); it may import every other layer.
Every command turns a ``KstateError`` into one clear line on stderr and an exit code
(1: the input is invalid / a property failed; 2: bad usage). A traceback reaching a
user is a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kstate import __version__
from kstate.errors import KstateError, UsageError

Handler = Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- graph


def _cmd_graph(args: argparse.Namespace) -> int:
    from kstate import machines
    from kstate.verify import graphs

    if args.export:
        out = Path(args.export)
        out.mkdir(parents=True, exist_ok=True)
        names = list(machines.MACHINES) if args.machine == "all" else [args.machine]
        for name in names:
            for filename, text in graphs.export(machines.resolve(name)).items():
                (out / filename).write_text(text)
                print(f"wrote {out / filename}")
        return 0
    if args.machine == "all":
        raise UsageError("'all' is only for --export DIR; name one machine to render")
    try:
        definition = machines.resolve(args.machine)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    fmt = args.format or _format_from_suffix(args.output) or "dot"
    if args.output_json:
        print(json.dumps(graphs.to_table(definition), indent=2))
        return 0
    data = graphs.render(definition, fmt, args.highlight or ())
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output} ({fmt}, {len(data)} bytes)")
    elif fmt == "png":
        raise UsageError("PNG is binary: give -o FILE.png")
    else:
        sys.stdout.write(data.decode())
    return 0


def _format_from_suffix(path: str | None) -> str | None:
    if not path:
        return None
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"mmd": "mermaid", "gv": "dot"}.get(suffix, suffix) or None


# --------------------------------------------------------------------------- validate


def _cmd_validate(args: argparse.Namespace) -> int:
    from kstate.api import manifests

    report = manifests.validate_paths(args.filename, recursive=args.recursive)
    for err in report.errors:
        print(f"error: {err}", file=sys.stderr)
    for m in report.manifests:
        print(f"{m.where}: {m.obj.KIND} {m.obj.metadata.name} is valid")
    if report.errors:
        print(f"{len(report.errors)} invalid document(s), {report.objects} valid, "
              f"in {report.files} file(s)", file=sys.stderr)
        return 1
    print(f"{report.objects} object(s) in {report.files} file(s) are valid")
    return 0


# --------------------------------------------------------------------------- apiserver


def _cmd_apiserver(args: argparse.Namespace) -> int:
    import asyncio

    from kstate.api.server import run_apiserver

    names = tuple(n for n in (args.name or ()) if n)
    asyncio.run(run_apiserver(args.store, args.listen, Path(args.data_dir),
                              insecure_http=args.insecure_http, names=names,
                              service_cidr=args.service_cidr))
    return 0


# --------------------------------------------------------------------------- up / down


def _cmd_up(args: argparse.Namespace) -> int:
    from kstate.daemon import Daemon, DaemonConfig, run_daemon

    _logging(args.verbose)
    config = DaemonConfig(
        data_dir=Path(args.data_dir), store=args.store or "", listen=args.listen,
        insecure_http=args.insecure_http, runtime=args.runtime, nodes=args.nodes,
        containerd_socket=args.containerd_socket or "",
        node_port_address=args.node_port_address, apply=tuple(args.apply or ()),
        node_name=args.node_name, backoff_initial=args.backoff_initial,
        backoff_cap=args.backoff_cap)

    def ready(daemon: Daemon) -> None:
        print(f"kstate is up: API server {daemon.url}")
        print(f"  kubectl --kubeconfig {daemon.kubeconfig} get pods")
        print("  stop with Ctrl-C or 'kstate down'", flush=True)

    return run_daemon(config, ready)


def _cmd_down(args: argparse.Namespace) -> int:
    from kstate.daemon import purge, stop_daemon

    data_dir = Path(args.data_dir)
    stopped = stop_daemon(data_dir)
    if stopped:
        print("kstate stopped")
    if not (args.purge or args.delete_data):
        if not stopped:
            print(f"no kstate daemon runs from {data_dir}", file=sys.stderr)
        return 0 if stopped else 1
    removed = purge(data_dir, delete_data=args.delete_data)
    if not stopped:
        print(f"no kstate daemon was running from {data_dir}")
    print(f"removed {removed} container(s) and sandbox(es) of its cluster")
    if args.delete_data:
        print(f"deleted {data_dir}")
    return 0


# --------------------------------------------------------------------------- components


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)  # one line per move


def _cmd_controller_manager(args: argparse.Namespace) -> int:
    from kstate.control.manager import ControllerManager
    from kstate.daemon import run_component

    _logging(args.verbose)
    return run_component(args.kubeconfig, ControllerManager)


def _cmd_scheduler(args: argparse.Namespace) -> int:
    from kstate.control.schedulerd import Scheduler
    from kstate.daemon import run_component

    _logging(args.verbose)
    return run_component(args.kubeconfig, Scheduler)


def _cmd_node(args: argparse.Namespace) -> int:
    from kstate.daemon import run_component
    from kstate.node.agent import AgentOptions, NodeAgent
    from kstate.runtime import open_runtime

    _logging(args.verbose)

    def build(client: Any, clock: Any) -> NodeAgent:
        options = {"socket": args.containerd_socket} if args.runtime == "containerd" \
            and args.containerd_socket else {}
        runtime = open_runtime(args.runtime, clock=clock, **options)
        return NodeAgent(client, runtime, args.name, clock,
                         AgentOptions(server_port=args.port, internal_ip=args.address))

    return run_component(args.kubeconfig, build)


# --------------------------------------------------------------------------- image


def _cmd_image(args: argparse.Namespace) -> int:
    if args.runtime == "containerd":
        from kstate.runtime.containerd_host import ContainerdHost, default_socket

        socket = args.containerd_socket or default_socket()
        host = ContainerdHost(state_dir=Path(socket).parent)
        if not host.answers():
            raise UsageError(f"no containerd answers on {socket}; start kstate's with "
                             "`python -m kstate.runtime.containerd_host start`, or pass "
                             "--containerd-socket")
        built = host.import_base_images(force=args.force)
        print(f"imported {', '.join(built)} into containerd's k8s.io namespace" if built
              else "base images already present: kstate/base:1, kstate/httpd:1, "
              "kstate/pause:1")
        return 0
    from kstate.runtime.docker import build_base_image_sync

    built = build_base_image_sync(force=args.force)
    print(f"built {', '.join(built)}" if built else
          "base images already present: kstate/base:1, kstate/httpd:1")
    return 0


# --------------------------------------------------------------------------- verify


def _cmd_verify(args: argparse.Namespace) -> int:
    from kstate.errors import ModelError
    from kstate.verify import report

    try:
        if args.replay:
            from kstate.verify.replay import replay_file

            outcome = replay_file(args.replay, scenario=args.scenario)
            print(json.dumps(outcome.to_json(), indent=2) if args.json else outcome.text())
            # As for a check: 1 when the property fails (here: on the engine).
            return 1 if outcome.reproduced else 0
        if args.explore:
            return _explore(args)
        if args.result:
            raise UsageError("--result goes with --explore")
        if not args.scenario:
            raise UsageError("give a SCENARIO.yaml (or --replay TRACE.json)")
        checker = _checker(args, args.scenario)
        if not args.json:
            checker = checker.progress(_progress_printer(), interval=1.0)
        result = checker.run()
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if sys.stderr.isatty() and not args.json:
        print(file=sys.stderr)
    if args.json:
        # The scenario's path makes the result self-contained for ``--replay``.
        print(json.dumps({**result.to_json(), "scenario": str(Path(args.scenario).resolve())},
                         indent=2))
    else:
        print(report.summary(result))
        for prop in result.properties:
            if prop.verdict.failed:
                print()
                print(report.trace_text(prop))
    if args.trace_graph:
        written = report.write_trace_graph(
            [p for p in result.properties if p.verdict.failed], args.trace_graph)
        print(f"wrote {written}" if written else "no counterexample to draw",
              file=sys.stderr)
    return 1 if any(p.verdict.failed for p in result.properties) else 0


def _checker(args: argparse.Namespace, scenario_path: str) -> Any:
    """The scenario's model under the options of ``kstate verify`` (a ``Checker``)."""
    from kstate.verify.checker import Checker
    from kstate.verify.system import load_scenario

    scenario = load_scenario(scenario_path)
    # --symmetry / --no-symmetry override the scenario, model and checker alike. Every
    # system model's representative is exact (docs/verify.md, "Symmetry"), so liveness
    # is decided under it too (docs/checker.md).
    symmetry = scenario.symmetry if args.symmetry is None else args.symmetry
    model = scenario.model(symmetry=symmetry)
    checker: Any = Checker(model).symmetry(symmetry).por(args.por)
    if args.simulate:
        checker = checker.simulate(walks=args.simulate, depth=args.walk_depth, seed=args.seed)
    elif args.dfs:
        checker = checker.dfs()
    else:
        checker = checker.bfs()
    bounds = scenario.bounds
    checker = checker.workers(args.workers) if args.workers else checker
    checker = checker.max_depth(args.max_depth or bounds.max_depth)
    checker = checker.max_states(args.max_states or bounds.max_states)
    return checker.timeout(args.timeout or bounds.timeout)


def _explore(args: argparse.Namespace) -> int:
    """``--explore``: serve the state-graph explorer; its counterexamples come from a
    ``--json`` result file (``--result``) or from running the check in the background."""
    from kstate.errors import ModelError
    from kstate.verify import explore
    from kstate.verify.checker import CheckResult
    from kstate.verify.system import load_scenario

    result = None
    scenario_path = args.scenario
    if args.result:
        try:
            doc = json.loads(Path(args.result).read_text())
        except OSError as exc:
            raise ModelError(f"cannot read: {exc.strerror or exc}", field=args.result) from None
        except ValueError as exc:
            raise ModelError(f"not JSON: {exc}", field=args.result) from None
        result = CheckResult.from_json(doc)
        scenario_path = scenario_path or doc.get("scenario")
    if not scenario_path:
        raise UsageError("give a SCENARIO.yaml to explore")
    model = load_scenario(scenario_path).model()
    if result is not None:
        explorer = explore.Explorer(model)
        explorer.traces.extend(explorer.traces_of(result))
    else:
        # The check gets its own model: the explorer's requests run beside it.
        checker = _checker(args, scenario_path)
        explorer = explore.Explorer(
            model, check=lambda progress: checker.progress(progress, interval=1.0).run())
    explore.serve(explorer, args.port,
                  lambda url: print(f"explorer on {url} (Ctrl-C stops it)", flush=True))
    return 0


def _progress_printer() -> Callable[[Any], None]:
    tty = sys.stderr.isatty()

    def show(progress: Any) -> None:
        if tty:
            print(f"\r{progress.line()}\033[K", end="", file=sys.stderr, flush=True)
        else:
            print(progress.line(), file=sys.stderr, flush=True)
    return show


# --------------------------------------------------------------------------- fuzz


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from kstate.verify.stateful import fuzz

    fuzz.pin_hash_seed(sys.argv[1:])
    tty = sys.stderr.isatty()

    def show(progress: fuzz.Progress) -> None:
        end = "" if tty else "\n"
        print(f"\r{progress.line()}\033[K" if tty else progress.line(), end=end,
              file=sys.stderr, flush=True)

    machine = fuzz.load_machine(args.machine, args.runtime) if args.machine else None
    outcome = fuzz.run_fuzz(args.runtime, args.examples, args.steps, args.seed,
                            Path(args.database) if args.database else None, show,
                            profile=args.profile, machine=machine)
    if tty:
        print(file=sys.stderr)
    print(outcome.text())
    return 1 if outcome.failed else 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kstate",
        description=(
            "Kubernetes' control plane as explicit state machines: one lifecycle "
            "definition run by the engine, the model checker and the renderer."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kstate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    graph = sub.add_parser(
        "graph",
        help="render a lifecycle machine (dot, svg, png, mermaid)",
        description="Render a lifecycle: pod, rc, service or node.",
    )
    graph.add_argument("machine", help="pod | rc | service | node (or 'all' with --export)")
    graph.add_argument("--format", choices=("dot", "svg", "png", "mermaid"),
                       help="output format (default: from -o's suffix, else dot)")
    graph.add_argument("--highlight", action="append", metavar="STATE",
                       help="fill STATE (repeatable)")
    graph.add_argument("-o", "--output", metavar="FILE", help="write to FILE")
    graph.add_argument("--json", dest="output_json", action="store_true",
                       help="print the definition as JSON instead")
    graph.add_argument("--export", metavar="DIR",
                       help="write the golden exports (dot, mermaid, json) into DIR")
    graph.set_defaults(handler=_cmd_graph)

    validate = sub.add_parser(
        "validate",
        help="validate manifests (files or directories)",
        description="Parse, default and validate Kubernetes manifests; exit 1 on any error.",
    )
    validate.add_argument("-f", "--filename", action="append", required=True,
                          metavar="FILE|DIR", help="manifest file or directory (repeatable)")
    validate.add_argument("-R", "--recursive", action="store_true",
                          help="descend into subdirectories, like kubectl -R")
    validate.set_defaults(handler=_cmd_validate)

    apiserver = sub.add_parser(
        "apiserver",
        help="run the Kubernetes-compatible API server",
        description="Serve the Kubernetes API (HTTPS, bearer tokens) over a store; writes "
                    "a CA, serving certificate, tokens.csv and admin.kubeconfig into "
                    "--data-dir on first start.",
    )
    apiserver.add_argument("--store", default="sqlite://./kstate-data/state.db",
                           help="store URL: sqlite:///path, etcd://host:port, memory://")
    apiserver.add_argument("--listen", default="127.0.0.1:6443", metavar="HOST:PORT",
                           help="address to listen on (port 0: any free port)")
    apiserver.add_argument("--data-dir", default="./kstate-data", metavar="DIR",
                           help="certificates, tokens and kubeconfig live here")
    apiserver.add_argument("--insecure-http", action="store_true",
                           help="serve plain HTTP (loopback addresses only)")
    apiserver.add_argument("--name", action="append", metavar="NAME",
                           help="extra DNS name or IP for the serving certificate")
    apiserver.add_argument("--service-cidr", metavar="CIDR",
                           help="cluster IP range for Services (default 127.96.0.0/12)")
    apiserver.set_defaults(handler=_cmd_apiserver)

    up = sub.add_parser(
        "up", help="run the all-in-one cluster (store, API server, controllers, "
        "scheduler, node agent, proxy)",
        description="Start a whole cluster in one process: SQLite store, HTTPS API server "
                    "(kubeconfig in the data dir), controller manager, scheduler, a node "
                    "agent on Docker (or --nodes N simulated nodes) and the service proxy.")
    up.add_argument("--data-dir", default="kstate-data", metavar="DIR",
                    help="store, certificates, tokens, kubeconfig (default kstate-data)")
    up.add_argument("--store", metavar="URL", help="store URL (default sqlite in DIR)")
    up.add_argument("--listen", default="127.0.0.1:6443", metavar="HOST:PORT")
    up.add_argument("--insecure-http", action="store_true",
                    help="plain HTTP (loopback only)")
    up.add_argument("--runtime", choices=("docker", "containerd", "fake"), default="docker",
                    help="the node's runtime: Docker, kstate's containerd (over CRI; "
                    "./dev up --runtime containerd starts it) or --nodes simulated nodes")
    up.add_argument("--containerd-socket", metavar="PATH",
                    help="containerd's socket (default /run/kstate-containerd/containerd.sock, "
                    "the one ./dev starts)")
    up.add_argument("--nodes", type=int, default=1,
                    help="simulated nodes (with --runtime fake)")
    up.add_argument("--node-port-address", default="0.0.0.0", metavar="ADDR",
                    help="where NodePort services listen")
    up.add_argument("--apply", action="append", metavar="FILE|DIR",
                    help="create or update these manifests once up (repeatable)")
    up.add_argument("--node-name", default="node-1", help="the Docker node's name")
    up.add_argument("--backoff-initial", type=float, default=10.0, metavar="S",
                    help="crash-loop back-off after the first restart (Kubernetes: 10 s)")
    up.add_argument("--backoff-cap", type=float, default=300.0, metavar="S",
                    help="longest crash-loop back-off (Kubernetes: 300 s)")
    up.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    up.set_defaults(handler=_cmd_up)

    down = sub.add_parser(
        "down", help="stop the daemon started by 'kstate up' (--purge: and its containers)",
        description="Stop the daemon of a data directory. Its containers keep running and "
                    "the next 'kstate up' adopts them, unless --purge removes them.")
    down.add_argument("--data-dir", default="kstate-data", metavar="DIR")
    down.add_argument("--purge", action="store_true",
                      help="also remove every container and sandbox this data directory's "
                           "cluster created, running or stopped (also when the daemon is "
                           "already dead); the data directory is kept")
    down.add_argument("--delete-data", action="store_true",
                      help="purge, then delete the data directory too (store, "
                           "certificates, kubeconfig)")
    down.set_defaults(handler=_cmd_down)

    for name, handler, text in (
        ("controller-manager", _cmd_controller_manager,
         "replication, endpoints, node lifecycle and garbage collection controllers"),
        ("scheduler", _cmd_scheduler, "the scheduler"),
        ("node", _cmd_node, "a node agent (kubelet) driving a container runtime"),
    ):
        component = sub.add_parser(name, help=f"run {text} against an API server",
                                   description=f"Run {text} standalone, against the API "
                                   "server of a kubeconfig (e.g. kstate-data/admin.kubeconfig).")
        component.add_argument("--kubeconfig", default="kstate-data/admin.kubeconfig",
                               metavar="FILE")
        component.add_argument("-v", "--verbose", action="store_true")
        if name == "node":
            component.add_argument("--name", required=True, help="the Node's name")
            component.add_argument("--runtime", choices=("docker", "containerd", "fake"),
                                   default="docker")
            component.add_argument("--containerd-socket", metavar="PATH",
                                   help="with --runtime containerd (default: kstate's own)")
            component.add_argument("--address", default="127.0.0.1",
                                   help="the node's InternalIP")
            component.add_argument("--port", type=int, default=10250,
                                   help="the agent's log endpoint (0: any free port)")
        component.set_defaults(handler=handler)

    image = sub.add_parser("image", help="local container images (no registry needed)",
                           description="Build the images the quick start runs.")
    image_sub = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    base = image_sub.add_parser(
        "build-base", help="build kstate/base:1 and kstate/httpd:1 from busybox-static",
        description="Import Debian's busybox-static into the local Docker engine as "
                    "kstate/base:1 (also tagged kstate/httpd:1); idempotent.")
    base.add_argument("--force", action="store_true", help="rebuild even if present")
    base.add_argument("--runtime", choices=("docker", "containerd"), default="docker",
                      help="containerd: import them (and kstate/pause:1) into kstate's "
                      "containerd with ctr, in CRI's k8s.io namespace")
    base.add_argument("--containerd-socket", metavar="PATH",
                      help="containerd's socket (default /run/kstate-containerd/containerd.sock)")
    base.set_defaults(handler=_cmd_image)

    verify = sub.add_parser(
        "verify",
        help="model-check a scenario (or replay a counterexample on the engine)",
        description=(
            "Explore a scenario's cluster with the engine's own reconcilers and lifecycle "
            "machines; exit 0 if every property holds, 1 if one fails, 2 on bad input. "
            "With --replay, run a counterexample on the in-process engine instead: exit 1 "
            "if the engine reproduces the violation, 0 if the property holds on it, 2 on a "
            "malformed trace."),
    )
    verify.add_argument("scenario", nargs="?", help="scenario YAML (see specs/scenarios/); "
                        "with --replay, overrides the scenario the trace names")
    how = verify.add_mutually_exclusive_group()
    how.add_argument("--bfs", action="store_true", help="breadth-first (default): "
                     "shortest counterexamples")
    how.add_argument("--dfs", action="store_true", help="depth-first")
    how.add_argument("--simulate", type=int, metavar="N",
                     help="N seeded random walks instead of exhaustive search")
    verify.add_argument("--walk-depth", type=int, default=100, metavar="D",
                        help="steps per simulated walk (default 100)")
    verify.add_argument("--seed", type=int, default=0, help="simulation seed")
    verify.add_argument("--workers", type=int, metavar="K", help="worker processes")
    verify.add_argument("--symmetry", action=argparse.BooleanOptionalAction, default=None,
                        help="symmetry reduction over nodes and each RC's pods (default: the "
                             "scenario's 'symmetry'; liveness is decided exactly under it)")
    verify.add_argument("--por", action=argparse.BooleanOptionalAction, default=None,
                        help="partial-order reduction (default: on wherever it preserves "
                        "every verdict: safety properties only, no depth bound; --por "
                        "forces it, and with a liveness property is an error)")
    verify.add_argument("--max-depth", type=int, metavar="D")
    verify.add_argument("--max-states", type=int, metavar="N")
    verify.add_argument("--timeout", type=float, metavar="S", help="seconds")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument("--trace-graph", metavar="FILE",
                        help="draw the counterexample (.svg, .png or .dot)")
    verify.add_argument("--explore", action="store_true",
                        help="serve a local web page to walk the state graph and play the "
                             "counterexamples step by step (127.0.0.1 only)")
    verify.add_argument("--port", type=int, default=8008, metavar="N",
                        help="--explore: the port to serve on (default 8008; 0: any free port)")
    verify.add_argument("--result", metavar="RESULT.json",
                        help="--explore: play the counterexamples of this --json result "
                             "instead of running the check")
    verify.add_argument("--replay", metavar="TRACE.json",
                        help="replay a counterexample (a --json result, or a file with "
                             "one trace) on the in-process engine")
    verify.set_defaults(handler=_cmd_verify)

    fuzz = sub.add_parser(
        "fuzz", help="random operations and faults against the in-process engine",
        description=(
            "Drive the real engine (API server, controllers, scheduler, node agents) with "
            "Hypothesis' stateful testing: random workloads, crashes, partitions, restarts, "
            "time, and Sieve's faults (held, reordered, dropped and expired watches, failed "
            "writes, crashes between two writes, failing readiness probes, clock skew); "
            "check invariants after every step and after settling. Prints a "
            "failing case as a minimal replayable program and saves it (replayed first "
            "next time). Exit 0: every invariant held; 1: a failure; 2: bad usage."))
    fuzz.add_argument("--runtime", choices=("fake", "docker"), default="fake",
                      help="fake runtimes (default) or real Docker containers")
    fuzz.add_argument("--profile", metavar="NAME",
                      help="take --examples and --steps from a budget profile "
                           "(dev, ci, long; see docs/stateful.md)")
    fuzz.add_argument("--examples", type=int, metavar="N",
                      help="random programs to run (default 50, or the profile's)")
    fuzz.add_argument("--steps", type=int, metavar="N",
                      help="rules per program at most (default 40, or the profile's)")
    fuzz.add_argument("--seed", type=int, metavar="S",
                      help="fix the random choices (reproduces a run)")
    fuzz.add_argument("--machine", metavar="MODULE:CLASS",
                      help="run this subclass of the runtime's machine instead (the same "
                           "rules over an engine with, say, a seeded bug)")
    fuzz.add_argument("--database", metavar="DIR",
                      help="where failures are kept (default ~/.kstate/fuzz-db, or "
                           "$KSTATE_FUZZ_DB)")
    fuzz.set_defaults(handler=_cmd_fuzz)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return int(exc.code or 0)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KstateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
