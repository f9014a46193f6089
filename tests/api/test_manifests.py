"""Manifests: multi-document YAML/JSON, Lists, directories, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kstate.api import (
    Namespace,
    Pod,
    ReplicationController,
    Service,
    load_path,
    load_string,
    validate_path,
    validate_string,
)
from kstate.api.manifests import MAX_NODES, manifest_files
from kstate.errors import ManifestError

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs" / "manifests"
BROKEN = Path(__file__).parent / "broken_manifests"

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
    - name: web
      image: kstate/httpd:1
"""


def errors_of(text: str, source: str = "m.yaml", **kw: bool) -> list[ManifestError]:
    report = validate_string(text, source, **kw)
    return list(report.errors)


def fields_of(err: ManifestError) -> list[tuple[str, str]]:
    return [(c.field, c.reason) for c in err.causes]


# ------------------------------------------------------------------ the quick start


def test_quick_start_manifests_validate() -> None:
    report = validate_path(SPECS)
    assert report.ok, [str(e) for e in report.errors]
    by_kind = {type(m.obj): m.obj for m in report.manifests}
    assert set(by_kind) == {ReplicationController, Service}
    rc = by_kind[ReplicationController]
    assert isinstance(rc, ReplicationController)
    assert (rc.metadata.name, rc.spec.replicas, rc.spec.selector) == (
        "mytomcat", 2, {"app": "mytomcat"})
    assert rc.spec.template is not None
    c = rc.spec.template.spec.containers[0]
    assert (c.image, c.image_pull_policy) == ("kstate/httpd:1", "Never")
    assert c.ports[0].container_port == 8080
    assert c.readiness_probe is not None and c.readiness_probe.http_get is not None
    assert c.readiness_probe.http_get.port == 8080
    assert "httpd -f -p 8080" in c.command[-1] and "$HOSTNAME" in c.command[-1]
    assert c.resources.limits and c.resources.requests
    svc = by_kind[Service]
    assert isinstance(svc, Service)
    assert svc.spec.type == "NodePort"
    p = svc.spec.ports[0]
    assert (p.port, p.target_port, p.node_port) == (8080, 8080, 30001)
    assert svc.spec.selector == {"app": "mytomcat"}


def test_all_example_manifests_validate() -> None:
    report = validate_path(SPECS, recursive=True)
    assert report.ok, [str(e) for e in report.errors]
    kinds = {m.obj.KIND for m in report.manifests}
    assert {"Pod", "Service", "Node", "Namespace", "ReplicationController"} <= kinds
    assert len(report.manifests) >= 8


# ------------------------------------------------------------------ shapes of input


def test_multi_document_indexes_count_empty_documents() -> None:
    text = POD.format(name="a") + "---\n---\n# only a comment\n---\n" + POD.format(name="b")
    docs = load_string(text, "multi.yaml")
    assert [(m.index, m.obj.metadata.name) for m in docs] == [(0, "a"), (3, "b")]
    assert docs[1].where == "multi.yaml (document 3)"
    assert docs[1].line == 13


def test_empty_input_gives_nothing() -> None:
    assert load_string("") == []
    assert load_string("---\n...\n") == []


def test_objects_are_defaulted() -> None:
    (m,) = load_string(POD.format(name="a"))
    assert isinstance(m.obj, Pod)
    assert m.obj.metadata.namespace == "default"
    assert m.obj.spec.restart_policy == "Always"


def test_list_is_expanded() -> None:
    text = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Namespace
    metadata: {name: a}
  - apiVersion: v1
    kind: Namespace
    metadata: {name: b}
"""
    docs = load_string(text, "l.yaml")
    assert [(m.index, m.item, m.obj.metadata.name) for m in docs] == [(0, 0, "a"), (0, 1, "b")]
    assert docs[1].where == "l.yaml (document 0, item 1)"
    assert docs[1].line == 7


def test_typed_list_items_may_omit_kind() -> None:
    text = json.dumps({"apiVersion": "v1", "kind": "NamespaceList",
                       "items": [{"metadata": {"name": "a"}}]})
    (m,) = load_string(text, "ns.json")
    assert isinstance(m.obj, Namespace)


def test_list_item_errors_carry_the_item_path() -> None:
    text = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Namespace
    metadata: {name: ok}
  - apiVersion: v1
    kind: Namespace
    metadata: {name: Not_OK}
  - 42
"""
    report = validate_string(text, "l.yaml")
    assert [m.obj.metadata.name for m in report.manifests] == ["ok"]
    assert [fields_of(e) for e in report.errors] == [
        [("items[1].metadata.name", "FieldValueInvalid")],
        [("items[2]", "FieldValueTypeInvalid")],
    ]
    assert "(line 9)" in report.errors[0].causes[0].message


def test_list_items_not_an_array() -> None:
    (err,) = errors_of("apiVersion: v1\nkind: List\nitems: {}\n")
    assert fields_of(err) == [("items", "FieldValueTypeInvalid")]


def test_json_files_and_json_streams() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}
    docs = load_string(json.dumps(ns) + "\n" + json.dumps(ns), "two.json")
    assert [m.index for m in docs] == [0, 1]
    (err,) = errors_of('{"apiVersion": "v1",\n  "kind": }', "bad.json")
    assert "invalid JSON at line 2, column 11" in str(err)
    assert err.source == "bad.json" and err.index == 0


def test_directory_is_read_sorted_and_filtered(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(POD.format(name="b"))
    (tmp_path / "a.yml").write_text(POD.format(name="a"))
    (tmp_path / "c.json").write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "c"}}))
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / ".hidden.yaml").write_text("{{{")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "d.yaml").write_text(POD.format(name="d"))
    assert [m.obj.metadata.name for m in load_path(tmp_path)] == ["a", "b", "c"]
    assert [m.obj.metadata.name for m in load_path(tmp_path, recursive=True)] == [
        "a", "b", "c", "d"]
    assert manifest_files(tmp_path / "b.yaml") == [tmp_path / "b.yaml"]


def test_every_error_is_collected_across_files(tmp_path: Path) -> None:
    (tmp_path / "1.yaml").write_text(POD.format(name="Bad1") + "---\n" + POD.format(name="ok"))
    (tmp_path / "2.yaml").write_text(POD.format(name="Bad2"))
    report = validate_path(tmp_path)
    assert [(Path(e.source).name, e.index) for e in report.errors] == [("1.yaml", 0),
                                                                      ("2.yaml", 0)]
    assert [m.obj.metadata.name for m in report.manifests] == ["ok"]
    with pytest.raises(ManifestError, match=r"and 1 more error; `kstate validate -f`"):
        load_path(tmp_path)


# ------------------------------------------------------------------ bad input, one by one


def test_invalid_yaml_names_line_and_column() -> None:
    text = POD.format(name="a") + "---\nmetadata:\n  name: x\n   bad: indent\n"
    report = validate_string(text, "f.yaml")
    assert len(report.manifests) == 1  # documents before the error are still read
    (err,) = report.errors
    assert err.source == "f.yaml" and err.index == 1
    assert "invalid YAML at line 12, column 7" in str(err)
    assert str(err).startswith("f.yaml (document 1): ")


def test_tabs_and_control_characters_are_yaml_errors() -> None:
    assert "invalid YAML" in str(errors_of("a:\n\tb: 1\n")[0])
    assert "invalid YAML" in str(errors_of("a: \x07\n")[0])


def test_non_mapping_document() -> None:
    (err,) = errors_of("- a\n- b\n")
    assert "is an array, expected a Kubernetes object" in str(err)
    (err,) = errors_of("just a string\n")
    assert 'string "just a string"' in str(err)


@pytest.mark.parametrize(
    ("text", "field", "reason", "needle"),
    [
        ("apiVersion: v1\nmetadata: {name: a}\n", "kind", "FieldValueRequired",
         "Pod (v1), ReplicationController (v1)"),
        ("kind: Pod\nmetadata: {name: a}\n", "apiVersion", "FieldValueRequired", "apiVersion"),
        ("apiVersion: apps/v1\nkind: Deployment\n", "kind", "FieldValueNotSupported",
         "kstate supports: Pod (v1)"),
        ("apiVersion: v2\nkind: Pod\n", "apiVersion", "FieldValueNotSupported",
         "served as apiVersion 'v1'"),
        ("apiVersion: v1\nkind: [Pod]\n", "kind", "FieldValueTypeInvalid", "string"),
        ("apiVersion: v1\nkind: Status\n", "kind", "FieldValueNotSupported",
         "cannot be created from a manifest"),
    ],
)
def test_kind_and_api_version_errors(text: str, field: str, reason: str, needle: str) -> None:
    (err,) = errors_of(text)
    assert fields_of(err) == [(field, reason)]
    assert needle in str(err)


def test_wrong_types_with_yaml_hints() -> None:
    text = """\
apiVersion: v1
kind: Pod
metadata:
  name: a
  labels:
    enabled: yes
    mode: 0777
    on: x
spec:
  hostNetwork: "true"
  containers:
    - name: web
      image: kstate/httpd:1
      ports:
        - containerPort: "8080"
"""
    (err,) = errors_of(text)
    got = {c.field: c.message for c in err.causes}
    assert set(got) == {"metadata.labels[enabled]", "metadata.labels[mode]", "metadata.labels",
                        "spec.hostNetwork", "spec.containers[0].ports[0].containerPort"}
    assert "booleans" in got["metadata.labels[enabled]"]
    assert "(line 6)" in got["metadata.labels[enabled]"]
    assert "number 511" in got["metadata.labels[mode]"]
    assert "octal" in got["metadata.labels[mode]"]
    assert "key boolean true must be a string" in got["metadata.labels"]
    assert "without quotes" in got["spec.hostNetwork"]
    assert "remove the quotes" in got["spec.containers[0].ports[0].containerPort"]
    assert all(c.reason == "FieldValueTypeInvalid" for c in err.causes)


def test_type_errors_and_validation_errors_are_reported_together() -> None:
    text = POD.format(name="Bad_Name").replace("image: kstate/httpd:1", "image: 5")
    (err,) = errors_of(text)
    assert fields_of(err) == [("metadata.name", "FieldValueInvalid"),
                              ("spec.containers[0].image", "FieldValueTypeInvalid")]


def test_invalid_names_bad_selectors_out_of_range_ports() -> None:
    text = """\
apiVersion: v1
kind: Service
metadata:
  name: Web
spec:
  type: NodePort
  selector:
    app: -web
  ports:
    - port: 70000
      nodePort: 80
"""
    (err,) = errors_of(text)
    assert fields_of(err) == [
        ("metadata.name", "FieldValueInvalid"),
        ("spec.selector[app]", "FieldValueInvalid"),
        ("spec.ports[0].port", "FieldValueInvalid"),
        ("spec.ports[0].nodePort", "FieldValueInvalid"),
    ]
    assert [c.message.rsplit("(line ", 1)[1] for c in err.causes] == ["4)", "8)", "10)", "11)"]


def test_unknown_fields_are_errors_unless_not_strict() -> None:
    text = POD.format(name="a") + "  contianers: []\n"
    (err,) = errors_of(text)
    assert fields_of(err) == [("spec.contianers", "FieldValueUnknown")]
    assert 'did you mean "containers"' in str(err)
    assert errors_of(text, strict=False) == []
    assert errors_of(POD.format(name="a") + "  volumes: []\n") == []  # a Kubernetes field


def test_duplicate_keys_are_rejected() -> None:
    (err,) = errors_of("apiVersion: v1\nkind: Pod\nkind: Service\n")
    assert "duplicate key 'kind' (first defined at line 2)" in str(err)
    assert "line 3" in str(err)


def test_merge_keys_are_not_duplicates() -> None:
    text = """\
apiVersion: v1
kind: List
items:
  - &ns {apiVersion: v1, kind: Namespace, metadata: {name: first}}
  - <<: *ns
    metadata: {name: merged}
"""
    report = validate_string(text)
    assert [m.obj.metadata.name for m in report.manifests] == ["first", "merged"]


def test_timestamps_stay_strings() -> None:
    text = """\
apiVersion: v1
kind: Namespace
metadata:
  name: a
  creationTimestamp: 2024-05-01T10:00:00Z
  annotations:
    day: 2024-05-01
"""
    (m,) = load_string(text)
    assert m.obj.metadata.creation_timestamp == "2024-05-01T10:00:00Z"
    assert m.obj.metadata.annotations["day"] == "2024-05-01"


def test_alias_bomb_and_recursive_alias_are_refused() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    (err,) = errors_of("\n".join(lines) + "\n")
    assert f"more than {MAX_NODES} YAML nodes" in str(err)
    (err,) = errors_of("a: &x [*x]\n")
    assert "recursive YAML alias" in str(err) or "invalid YAML" in str(err)


def test_hostile_documents_never_raise_other_errors() -> None:
    for text in ("[" * 5000 + "]" * 5000, "a: " + "9" * 6000, "a: !!binary '%%%'",
                 "a: !!python/object:os.system {}", "? [a, b]\n: c\n", "a: .nan\n",
                 "apiVersion: v1\nkind: Pod\nmetadata: {name: !!binary aGk=}\n"):
        report = validate_string(text)
        assert report.errors, text
    assert errors_of("[" * 5000, "deep.json")
    assert errors_of("1" * 6000, "big.json")


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (err,) = validate_path(tmp_path).errors
    assert "not UTF-8" in str(err) and err.source.endswith("latin1.yaml")
    (err,) = validate_path(tmp_path / "missing.yaml").errors
    assert "no such file or directory" in str(err)
    empty = tmp_path / "empty"
    empty.mkdir()
    (err,) = validate_path(empty).errors
    assert "no manifest files" in str(err)


def test_byte_order_mark_is_accepted() -> None:
    assert len(load_string("\ufeff" + POD.format(name="a"))) == 1


# ------------------------------------------------------------------ the broken folder

#: What ``kstate validate -f tests/api/broken_manifests`` must report: for each error,
#: (file, document index, [(field, reason), ...]) — also described in its README.
BROKEN_EXPECTED: list[tuple[str, int, list[tuple[str, str]]]] = [
    ("01-invalid-yaml.yaml", 0, []),
    ("02-not-a-mapping.yaml", 0, []),
    ("03-missing-kind.yaml", 0, [("kind", "FieldValueRequired")]),
    ("04-unknown-kind.yaml", 0, [("kind", "FieldValueNotSupported")]),
    ("05-wrong-api-version.yaml", 0, [("apiVersion", "FieldValueNotSupported")]),
    ("06-wrong-types.yaml", 0, [
        ("metadata.labels[enabled]", "FieldValueTypeInvalid"),
        ("spec.replicas", "FieldValueTypeInvalid"),
        ("spec.template.spec.containers[0].ports[0].containerPort", "FieldValueTypeInvalid"),
    ]),
    ("07-invalid-names.yaml", 0, [
        ("metadata.name", "FieldValueInvalid"),
        ("spec.containers[0].name", "FieldValueInvalid"),
        ("spec.containers[1].name", "FieldValueDuplicate"),
        ("spec.containers[1].name", "FieldValueInvalid"),
    ]),
    ("07-invalid-names.yaml", 1, [("metadata.name", "FieldValueInvalid")]),
    ("08-bad-selector.yaml", 0, [
        ("spec.template.metadata.labels", "FieldValueInvalid"),
        ("spec.template.spec.restartPolicy", "FieldValueNotSupported"),
    ]),
    ("08-bad-selector.yaml", 1, [
        ("spec.selector[app/]", "FieldValueInvalid"),
        ("spec.selector[app/]", "FieldValueInvalid"),
    ]),
    ("09-out-of-range-ports.yaml", 0, [
        ("spec.ports[0].port", "FieldValueInvalid"),
        ("spec.ports[0].nodePort", "FieldValueForbidden"),
        ("spec.ports[0].nodePort", "FieldValueInvalid"),
    ]),
    ("09-out-of-range-ports.yaml", 1, [("spec.ports[0].nodePort", "FieldValueInvalid")]),
    ("09-out-of-range-ports.yaml", 2, [
        ("spec.containers[0].ports[0].containerPort", "FieldValueRequired")]),
    ("10-multi-doc.yaml", 2, [("spec.containers[0].image", "FieldValueRequired")]),
    ("11-unknown-field.yaml", 0, [
        ("spec.containers", "FieldValueRequired"),
        ("spec.contianers", "FieldValueUnknown"),
    ]),
    ("12-duplicate-key.yaml", 0, []),
    ("13-list.json", 0, [
        ("items[1].spec.containers[0].resources.limits[memory]", "FieldValueInvalid"),
        ("items[1].spec.containers[0].resources.requests[cpu]", "FieldValueInvalid"),
        ("items[1].spec.restartPolicy", "FieldValueNotSupported"),
    ]),
]


def test_broken_folder() -> None:
    report = validate_path(BROKEN)
    got = [(Path(e.source).name, e.index, fields_of(e)) for e in report.errors]
    assert got == BROKEN_EXPECTED
    # ... while the good documents in the same files are still read
    assert [m.where.split("/")[-1] for m in report.manifests] == [
        "10-multi-doc.yaml (document 0)", "13-list.json (document 0, item 0)"]
    text = "\n".join(str(e) for e in report.errors)
    for needle in ("line 7, column 4", "is an array", "kstate supports: Pod",
                   "served as apiVersion 'v1'", "quote it in YAML", "remove the quotes",
                   "RFC 1123", "DNS-1035", "does not match template", "30000-32767",
                   "between 1 and 65535", 'did you mean "containers"', "duplicate key 'name'",
                   "not a quantity", "less than or equal to cpu limit"):
        assert needle in text, needle


def test_list_with_a_misspelled_items_key_is_not_silently_empty() -> None:
    (err,) = errors_of("apiVersion: v1\nkind: List\nitemz: []\n")
    assert fields_of(err) == [("itemz", "FieldValueUnknown")]


def test_validate_paths_combines_reports(tmp_path: Path) -> None:
    from kstate.api import validate_paths

    (tmp_path / "a.yaml").write_text(POD.format(name="a"))
    (tmp_path / "b.yaml").write_text(POD.format(name="B"))
    report = validate_paths([tmp_path / "a.yaml", tmp_path / "b.yaml", SPECS])
    assert (report.files, report.objects, len(report.errors)) == (4, 3, 1)
    assert not report.ok
