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
