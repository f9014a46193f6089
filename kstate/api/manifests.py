"""Manifests: YAML / JSON files -> defaulted, validated objects, or precise errors.

Where it sits: the first step of the runtime path ("manifest YAML -> api server"): the
CLI's ``kstate validate -f`` and ``kstate apply -f`` read files here; the API server
reuses the same decode -> default -> validate pipeline for request bodies.

What it guarantees:

* multi-document YAML from a string, a file or a directory (sorted; ``*.yaml``,
  ``*.yml``, ``*.json``); ``List`` documents (and typed lists such as ``PodList``) are
  expanded; empty documents (a lone ``---``) are skipped like kubectl does;
* every result carries its source file and 0-based document index (and item index
  within a List);
* bad input never raises anything but :class:`~kstate.errors.ManifestError`, naming the
  file, the document, the field path and, for YAML, the line: invalid YAML, a document
  that is not a mapping, missing / unknown ``kind`` or ``apiVersion`` (listing the
  supported kinds), wrongly typed fields (with a hint for YAML 1.1 traps: ``yes``,
  ``on``, ``0777``), fields Kubernetes does not know (strict, like ``kubectl``'s default),
  and every validation rule;
* :func:`validate_path` collects *all* errors across files and documents instead of
  stopping at the first (``kstate validate`` prints them and exits 1).

Two YAML traps are closed at the loader: unquoted timestamps stay strings (PyYAML would
make ``datetime`` objects) and duplicate keys are errors (PyYAML silently keeps the
last one, which would corrupt a manifest without a word).

>>> docs = load_string('''
... apiVersion: v1
... kind: Namespace
... metadata: {name: prod}
... ---
... ''', source="ns.yaml")
>>> [(m.source, m.index, m.obj.metadata.name, m.obj.status.phase) for m in docs]
[('ns.yaml', 0, 'prod', 'Active')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from kstate.api.codec import decode, describe, object_name, unknown_field_causes
from kstate.api.defaults import default
from kstate.api.meta import KubeObject
from kstate.api.registry import REGISTRY, kind_of
from kstate.api.validation import validate
from kstate.errors import Cause, InvalidObject, ManifestError

SUFFIXES = (".yaml", ".yml", ".json")
# Far above any real manifest; stops "billion laughs" alias bombs before they expand.
MAX_NODES = 200_000


@attrs.frozen
class Manifest:
    """One object read from a manifest, and where it came from."""

    source: str
    index: int  # 0-based document number in ``source`` (empty documents count)
    obj: KubeObject
    item: int | None = None  # position in a List document
    line: int | None = None  # 1-based line where the document (or List item) starts

    @property
    def where(self) -> str:
        """``file.yaml (document 1)``, ``file.yaml (document 0, item 2)``."""
        item = f", item {self.item}" if self.item is not None else ""
        return f"{self.source} (document {self.index}{item})"


@attrs.frozen
class Report:
    """Everything read from a set of manifests: the good objects and every error."""

    manifests: tuple[Manifest, ...]
    errors: tuple[ManifestError, ...]
    files: int = 0  # manifest files read

    @property
    def ok(self) -> bool:
        """No errors at all."""
        return not self.errors

    @property
    def objects(self) -> int:
        """How many objects were read and found valid."""
        return len(self.manifests)


# ------------------------------------------------------------------ the YAML loader

_DROPPED_RESOLVERS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
_MERGE = "tag:yaml.org,2002:merge"

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    """Safe loader with Kubernetes' expectations: strings stay strings, no dup keys."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_RESOLVERS]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: dict[tuple[str, str], yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key_node.value!r} (first defined at line {first})",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _yaml_error(e: yaml.YAMLError) -> str:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        context = f" ({e.context})" if e.context else ""
        return (f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: "
                f"{e.problem}{context}")
    return f"invalid YAML: {e}"


class _Unreadable(Exception):
    """A YAML document kstate refuses to expand (alias bombs, recursive aliases)."""


def _count_nodes(node: yaml.Node, memo: dict[int, int], active: set[int]) -> int:
    """Expanded size of a node graph (aliases counted each time they are used)."""
    got = memo.get(id(node))
    if got is not None:
        return got
    if id(node) in active:
        raise _Unreadable("recursive YAML alias (an anchor used inside itself)")
    active.add(id(node))
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _count_nodes(child, memo, active)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _count_nodes(k, memo, active) + _count_nodes(v, memo, active)
    active.discard(id(node))
    memo[id(node)] = total
    if total > MAX_NODES:
        raise _Unreadable(
            f"document expands to more than {MAX_NODES} YAML nodes (alias bomb?)")
    return total


_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[([^\]]*)\]")


def _locate(node: yaml.Node | None, path: str) -> int | None:
    """1-based line of the node at a JSON path like ``spec.ports[0].port``, or of the
    deepest ancestor that exists (a missing field is reported where it belongs)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for m in _PATH_TOKEN.finditer(path):
        token = m.group(1) if m.group(1) is not None else m.group(2)
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == token:
                    nxt = v
                    line = k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and token.isdigit():
            i = int(token)
            if i < len(node.value):
                nxt = node.value[i]
                line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


# ------------------------------------------------------------------ documents


@attrs.frozen
class _Doc:
    data: Any
    index: int
    node: yaml.Node | None = None  # YAML documents only: for line numbers


def _yaml_documents(text: str, source: str) -> Iterator[_Doc | ManifestError]:
    loader = _Loader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
                if node is not None:
                    _count_nodes(node, {}, set())
                data = loader.construct_document(node)
            except yaml.YAMLError as e:
                yield ManifestError(_yaml_error(e), source=source, index=index)
                return  # the parser cannot resynchronize after a syntax error
            except _Unreadable as e:
                yield ManifestError(str(e), source=source, index=index)
                return
            except RecursionError:
                yield ManifestError("document is nested too deeply", source=source,
                                    index=index)
                return
            except (ValueError, TypeError, OverflowError) as e:
                # PyYAML lets some constructor failures through (an integer of 5000
                # digits, say); they are still the document's fault, not ours.
                yield ManifestError(f"invalid YAML value: {e}", source=source, index=index)
                return
            yield _Doc(data, index, node)
            index += 1
    finally:
        loader.dispose()


def _json_documents(text: str, source: str) -> Iterator[_Doc | ManifestError]:
    decoder = json.JSONDecoder()
    pos, index = 0, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        try:
            data, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            yield ManifestError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                                source=source, index=index)
            return
        except RecursionError:
            yield ManifestError("document is nested too deeply", source=source, index=index)
            return
        except ValueError as e:  # e.g. an integer literal of thousands of digits
            yield ManifestError(f"invalid JSON: {e}", source=source, index=index)
            return
        yield _Doc(data, index)
        index += 1


def _is_list_kind(data: Mapping[str, Any]) -> bool:
    kind = data.get("kind")
    if not isinstance(kind, str) or not kind.endswith("List"):
        return False
    api = data.get("apiVersion")
    return kind == "List" or (
        isinstance(api, str) and REGISTRY.for_api(api, kind[:-4]) is not None
    )


def _process(doc: _Doc, source: str, strict: bool) -> Iterator[Manifest | ManifestError]:
    data = doc.data
    if data is None:
        return  # an empty document: skipped, like kubectl
    line = doc.node.start_mark.line + 1 if doc.node is not None else None
    if not isinstance(data, Mapping):
        yield ManifestError(
            f"document{_at(line)} is {describe(data)}, expected a Kubernetes object (a "
            "mapping with apiVersion, kind and metadata)", source=source, index=doc.index)
        return
    if _is_list_kind(data):
        yield from _process_list(doc, data, source, strict)
        return
    result = _object(data, doc, source, strict, prefix="")
    if isinstance(result, ManifestError):
        yield result
    else:
        yield Manifest(source, doc.index, result, line=line)


def _process_list(doc: _Doc, data: Mapping[str, Any], source: str, strict: bool
                  ) -> Iterator[Manifest | ManifestError]:
    stray = [k for k in data if k not in ("apiVersion", "kind", "metadata", "items")]
    if stray and strict:
        yield ManifestError(
            f"{data['kind']} has unknown fields {', '.join(map(repr, stray))} (a list has "
            "apiVersion, kind, metadata and items)", source=source, index=doc.index,
            causes=[Cause(str(k), "FieldValueUnknown", f'unknown field "{k}"') for k in stray])
    items = data.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        yield ManifestError(f"{data['kind']}: items: expected an array, got "
                            f"{describe(items)}", source=source, index=doc.index,
                            causes=[Cause("items", "FieldValueTypeInvalid", "expected array")])
        return
    kind = str(data["kind"])
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and kind != "List" and "kind" not in item:
            # A typed list (PodList) may leave the kind of its items implicit.
            item = {"apiVersion": data.get("apiVersion"), "kind": kind[:-4], **item}
        result = _object(item, doc, source, strict, prefix=f"items[{i}]")
        if isinstance(result, ManifestError):
            yield result
        else:
            line = _locate(doc.node, f"items[{i}]")
            yield Manifest(source, doc.index, result, item=i, line=line)


def _at(line: int | None) -> str:
    return f" at line {line}" if line is not None else ""


def _object(data: Any, doc: _Doc, source: str, strict: bool, prefix: str
            ) -> KubeObject | ManifestError:
    """Decode, default and validate one object; a ``ManifestError`` with every cause."""
    where_line = _locate(doc.node, prefix) if doc.node is not None else None

    def fail(what: str, causes: list[Cause]) -> ManifestError:
        located = sorted((_relocate(c, prefix, doc.node) for c in causes),
                         key=lambda lc: lc[1] or 0)  # in file order
        causes = [c for c, _ in located]
        listed = "; ".join(str(c) for c in causes)
        return ManifestError(f"{what}{_at(where_line)} is invalid: {listed}",
                             source=source, index=doc.index, causes=causes)

    if not isinstance(data, Mapping):
        return fail("object", [Cause("", "FieldValueTypeInvalid",
                                     f"expected an object, got {describe(data)}")])
    try:
        info = kind_of(data)
    except InvalidObject as e:
        return fail(e.kind, list(e.causes))
    if not info.resource:
        return fail(info.kind, [Cause("kind", "FieldValueNotSupported",
                                      f"{info.kind} cannot be created from a manifest; "
                                      f"supported kinds: {REGISTRY.kind_names()}")])
    what = f"{info.kind} {object_name(data)!r}" if object_name(data) else info.kind
    obj, type_causes = decode(info.cls, data)
    if obj is None:
        return fail(what, type_causes)
    assert isinstance(obj, KubeObject)
    causes = list(type_causes)
    if strict:
        causes.extend(unknown_field_causes(obj))
    obj = default(obj)
    bad = [c.field for c in type_causes]
    causes.extend(c for c in validate(obj) if not _under_any(c.field, bad))
    if causes:
        return fail(what, causes)
    return obj


def _under_any(path: str, roots: list[str]) -> bool:
    # A field that failed to decode was left at its default; validation would then
    # complain about it again ("Required value") — report the type error only.
    return any(path == r or path.startswith((r + ".", r + "[")) for r in roots)


def _relocate(cause: Cause, prefix: str, node: yaml.Node | None) -> tuple[Cause, int | None]:
    """Prefix the path (List items) and add the YAML line of the field."""
    path = f"{prefix}.{cause.field}" if prefix and cause.field else (prefix or cause.field)
    line = _locate(node, path) if node is not None else None
    message = f"{cause.message} (line {line})" if line is not None else cause.message
    return Cause(path, cause.reason, message), line


# ------------------------------------------------------------------ entry points


def validate_string(text: str, source: str = "<string>", *, strict: bool = True) -> Report:
    """Read every document of ``text``; collect objects and all errors.

    ``strict`` reports fields Kubernetes does not define (``spec.contianers``) as errors,
    like ``kubectl``'s default ``--validate=strict``.
    """
    manifests: list[Manifest] = []
    errors: list[ManifestError] = []
    if text.startswith("\ufeff"):
        text = text[1:]
    docs = _json_documents(text, source) if source.endswith(".json") else _yaml_documents(
        text, source)
    for doc in docs:
        if isinstance(doc, ManifestError):
            errors.append(doc)
            continue
        for result in _process(doc, source, strict):
            if isinstance(result, ManifestError):
                errors.append(result)
            else:
                manifests.append(result)
    return Report(tuple(manifests), tuple(errors), 1)


def manifest_files(path: str | Path, *, recursive: bool = False) -> list[Path]:
    """The manifest files ``path`` names: itself, or the ``*.yaml``/``*.yml``/``*.json``
    files of a directory, sorted by name (hidden files skipped)."""
    p = Path(path)
    if p.is_dir():
        pattern = "**/*" if recursive else "*"
        return sorted(
            f for f in p.glob(pattern)
            if f.is_file() and f.suffix in SUFFIXES and not f.name.startswith(".")
        )
    return [p]


def validate_path(path: str | Path, *, recursive: bool = False, strict: bool = True) -> Report:
    """Read a file or a directory of manifests; collect objects and *all* errors.

    >>> report = validate_path("specs/manifests")  # doctest: +SKIP
    >>> report.ok, [m.obj.metadata.name for m in report.manifests]  # doctest: +SKIP
    (True, ['mytomcat', 'mytomcat'])
    """
    p = Path(path)
    if not p.exists():
        return Report((), (ManifestError("no such file or directory", source=str(path)),))
    files = manifest_files(p, recursive=recursive)
    if not files:
        return Report((), (ManifestError(
            f"no manifest files ({', '.join('*' + s for s in SUFFIXES)}) in this directory",
            source=str(path)),))
    manifests: list[Manifest] = []
    errors: list[ManifestError] = []
    read = 0
    for f in files:
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            errors.append(ManifestError(f"not UTF-8 text (byte {e.start})", source=str(f)))
            continue
        except OSError as e:
            errors.append(ManifestError(f"cannot read: {e.strerror}", source=str(f)))
            continue
        read += 1
        report = validate_string(text, str(f), strict=strict)
        manifests.extend(report.manifests)
        errors.extend(report.errors)
    return Report(tuple(manifests), tuple(errors), read)


def validate_paths(paths: Iterable[str | Path], *, recursive: bool = False,
                   strict: bool = True) -> Report:
    """:func:`validate_path` over several files/directories (``kstate validate -f A -f B``),
    one combined report."""
    manifests: list[Manifest] = []
    errors: list[ManifestError] = []
    files = 0
    for path in paths:
        report = validate_path(path, recursive=recursive, strict=strict)
        manifests.extend(report.manifests)
        errors.extend(report.errors)
        files += report.files
    return Report(tuple(manifests), tuple(errors), files)


def _raise_first(report: Report) -> list[Manifest]:
    if report.errors:
        first = report.errors[0]
        more = len(report.errors) - 1
        if more:
            where = (first.source or "<input>") + (
                f" (document {first.index})" if first.index is not None else "")
            message = str(first)[len(where) + 2:]
            raise ManifestError(
                f"{message} (and {more} more error"
                f"{'s' if more > 1 else ''}; `kstate validate -f` lists them all)",
                source=first.source, index=first.index, causes=first.causes)
        raise first
    return list(report.manifests)


def load_string(text: str, source: str = "<string>", *, strict: bool = True
                ) -> list[Manifest]:
    """The objects of ``text`` (defaulted and validated); raises the first
    ``ManifestError`` (saying how many more there are)."""
    return _raise_first(validate_string(text, source, strict=strict))


def load_path(path: str | Path, *, recursive: bool = False, strict: bool = True
              ) -> list[Manifest]:
    """The objects of a file or directory; raises like :func:`load_string`."""
    return _raise_first(validate_path(path, recursive=recursive, strict=strict))


load_file = load_path
