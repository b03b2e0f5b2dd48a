#!/usr/bin/env python3
"""Renders the Kustomizations under deploy/ and validates every Kubernetes
manifest there, without a cluster.

Rendering uses a small built-in renderer that supports exactly the
Kustomization features this repository uses -- `resources` (files and
directories), `namespace`, `images`, and `patches` that are RFC 6902 JSON
patches (from `path` or inline `patch`) with a kind/name target. Anything
else is an error naming the field, never silently ignored. Where `kubectl
kustomize` exists, every Kustomization is rendered by it too and the two
results must be identical, so the built-in renderer cannot drift from the
real one unnoticed.

Validation: kubernetes-validate's strict schemas (unknown fields are errors)
for the oldest Kubernetes the driver's chart supports and the newest schema
set installed; SecretProviderClass, a CRD those schemas lack, against
scripts/schemas/secretproviderclass-v1.json plus a parse of its `objects`
parameter the way the provider reads it.

Every .yaml under deploy/ is covered: a Kustomization, a resource or patch a
Kustomization names (checked by rendering), the kind cluster config (checked
for its kind), or else a standalone manifest (validated).

    manifests.py check [--root DIR]   # what `make test` runs
    manifests.py render DIR           # print the built-in rendering
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

KUSTOMIZATION = "kustomization.yaml"
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
PATCH_KEYS = {"path", "patch", "target"}
TARGET_KEYS = {"kind", "name", "namespace"}
IMAGE_KEYS = {"name", "newName", "newTag", "digest"}

# Kinds whose objects live in a namespace (the `namespace` field applies) and
# kinds that do not. A kind in neither set is an error: the renderer would
# not know what kustomize does with it.
NAMESPACED = {
    "ConfigMap", "DaemonSet", "Deployment", "Pod", "Secret",
    "SecretProviderClass", "Service", "ServiceAccount",
}
CLUSTER_SCOPED = {"CSIDriver", "CustomResourceDefinition", "Namespace"}

# Where pod specs sit, for the `images` field.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "DaemonSet": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
}

# Oldest Kubernetes the driver's Helm chart supports (kubeVersion >=1.30).
OLDEST_KUBERNETES = "1.30"

# YAML files under deploy/ that are not Kubernetes manifests, with the
# (apiVersion, kind) they must have.
OTHER_CONFIGS = {
    "deploy/e2e/kind.yaml": ("kind.x-k8s.io/v1alpha4", "Cluster"),
}


class RenderError(Exception):
    """A Kustomization the built-in renderer cannot render faithfully."""


class ValidationFailure(Exception):
    """A manifest that does not validate."""


# === loading ===


def load_documents(path: Path) -> list[dict]:
    """All non-empty YAML documents of a file; each must be a mapping."""
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise RenderError(f"{path}: document {i + 1} is not a mapping")
    return docs


def load_kustomization(directory: Path) -> dict:
    path = directory / KUSTOMIZATION
    docs = load_documents(path)
    if len(docs) != 1:
        raise RenderError(f"{path}: expected one document, found {len(docs)}")
    k = docs[0]
    unknown = sorted(set(k) - KUSTOMIZATION_KEYS)
    if unknown:
        raise RenderError(
            f"{path}: the built-in renderer does not support {', '.join(unknown)}; "
            "extend scripts/manifests.py (and its tests) or drop the field"
        )
    if k.get("apiVersion") != KUSTOMIZE_API or k.get("kind") != "Kustomization":
        raise RenderError(f"{path}: expected apiVersion {KUSTOMIZE_API}, kind Kustomization")
    return k


# === rendering ===


def render(directory: Path, used: set[Path] | None = None) -> list[dict]:
    """Renders the Kustomization in `directory`; adds every file it reads to `used`."""
    directory = directory.resolve()
    used = used if used is not None else set()
    used.add(directory / KUSTOMIZATION)
    k = load_kustomization(directory)
    docs: list[dict] = []
    for entry in k.get("resources") or []:
        path = (directory / entry).resolve()
        if path.is_dir():
            docs.extend(render(path, used))
        elif path.is_file():
            used.add(path)
            docs.extend(copy.deepcopy(load_documents(path)))
        else:
            raise RenderError(f"{directory / KUSTOMIZATION}: resource {entry} does not exist")
    for patch in k.get("patches") or []:
        apply_patch(directory, patch, docs, used)
    if "namespace" in k:
        set_namespace(docs, k["namespace"])
    for image in k.get("images") or []:
        set_image(docs, image)
    return docs


def set_namespace(docs: list[dict], namespace: str) -> None:
    for doc in docs:
        kind = doc.get("kind")
        if kind in NAMESPACED:
            doc.setdefault("metadata", {})["namespace"] = namespace
        elif kind not in CLUSTER_SCOPED:
            raise RenderError(
                f"namespace: the built-in renderer does not know whether {kind} is namespaced"
            )


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """`name[:tag][@digest]` -> (name, tag, digest); a registry port is not a tag."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image, tag = image[:colon], image[colon + 1:]
    return image, tag, digest


def retag(image: str, entry: dict) -> str:
    name, tag, digest = split_image(image)
    if name != entry["name"]:
        return image
    name = entry.get("newName", name)
    if "digest" in entry:
        return f"{name}@{entry['digest']}"
    if "newTag" in entry:
        return f"{name}:{entry['newTag']}"
    if digest:
        return f"{name}@{digest}"
    return f"{name}:{tag}" if tag else name


def set_image(docs: list[dict], entry: dict) -> None:
    unknown = sorted(set(entry) - IMAGE_KEYS)
    if unknown or "name" not in entry:
        raise RenderError(f"images: unsupported entry {entry}")
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        for field in ("containers", "initContainers"):
            for container in spec.get(field) or []:
                if "image" in container:
                    container["image"] = retag(container["image"], entry)


def pod_spec(doc: dict) -> dict | None:
    path = POD_SPEC_PATHS.get(doc.get("kind"))
    if path is None:
        return None
    node = doc
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, dict) else None


def apply_patch(directory: Path, patch: dict, docs: list[dict], used: set[Path]) -> None:
    where = directory / KUSTOMIZATION
    unknown = sorted(set(patch) - PATCH_KEYS)
    if unknown:
        raise RenderError(f"{where}: patch fields {', '.join(unknown)} are not supported")
    if ("path" in patch) == ("patch" in patch):
        raise RenderError(f"{where}: a patch needs exactly one of path and patch")
    target = patch.get("target")
    if not isinstance(target, dict) or set(target) - TARGET_KEYS or not {"kind", "name"} <= set(target):
        raise RenderError(
            f"{where}: the built-in renderer supports patch targets with kind and name "
            f"(and namespace) only, got {target}"
        )
    if "path" in patch:
        path = (directory / patch["path"]).resolve()
        used.add(path)
        ops = load_documents_or_list(path)
    else:
        ops = yaml.safe_load(patch["patch"])
    if not isinstance(ops, list):
        raise RenderError(
            f"{where}: only RFC 6902 JSON patches (a list of operations) are supported"
        )
    matches = [d for d in docs if matches_target(d, target)]
    if len(matches) != 1:
        raise RenderError(f"{where}: patch target {target} matches {len(matches)} resources")
    for op in ops:
        json_patch(matches[0], op)


def load_documents_or_list(path: Path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def matches_target(doc: dict, target: dict) -> bool:
    meta = doc.get("metadata") or {}
    return (
        doc.get("kind") == target["kind"]
        and meta.get("name") == target["name"]
        and ("namespace" not in target or meta.get("namespace") == target["namespace"])
    )


def pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise RenderError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: dict, op: dict) -> None:
    """One RFC 6902 operation: add, remove or replace."""
    kind = op.get("op")
    if kind not in ("add", "remove", "replace"):
        raise RenderError(f"JSON patch operation {kind!r} is not supported")
    *parents, last = pointer(op["path"])
    node = doc
    for part in parents:
        node = child(node, part, op["path"])
    if isinstance(node, list):
        if kind == "add" and last == "-":
            node.append(copy.deepcopy(op["value"]))
            return
        index = list_index(node, last, op["path"], allow_end=kind == "add")
        if kind == "add":
            node.insert(index, copy.deepcopy(op["value"]))
        elif kind == "remove":
            del node[index]
        else:
            node[index] = copy.deepcopy(op["value"])
    elif isinstance(node, dict):
        if kind != "add" and last not in node:
            raise RenderError(f"JSON patch {kind} {op['path']}: no such member")
        if kind == "remove":
            del node[last]
        else:
            node[last] = copy.deepcopy(op["value"])
    else:
        raise RenderError(f"JSON patch {kind} {op['path']}: parent is not a container")


def child(node, part: str, path: str):
    if isinstance(node, dict):
        if part not in node:
            raise RenderError(f"JSON patch path {path}: no member {part!r}")
        return node[part]
    if isinstance(node, list):
        return node[list_index(node, part, path, allow_end=False)]
    raise RenderError(f"JSON patch path {path}: {part!r} is inside a scalar")


def list_index(node: list, part: str, path: str, allow_end: bool) -> int:
    if not part.isdigit():
        raise RenderError(f"JSON patch path {path}: {part!r} is not an array index")
    index = int(part)
    if index > len(node) or (index == len(node) and not allow_end):
        raise RenderError(f"JSON patch path {path}: index {index} is out of range")
    return index


def kubectl_kustomize(directory: Path) -> list[dict] | None:
    """`kubectl kustomize DIR` parsed, or None where kubectl cannot do it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    probe = subprocess.run([kubectl, "kustomize", "--help"], capture_output=True, check=False)
    if probe.returncode != 0:
        return None
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RenderError(f"kubectl kustomize {directory} failed: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


def identity(doc: dict) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    return (doc.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def same_rendering(ours: list[dict], theirs: list[dict]) -> list[str]:
    """Differences between two renderings, as readable lines (empty if equal)."""
    a = {identity(d): d for d in ours}
    b = {identity(d): d for d in theirs}
    problems = [f"only in the built-in rendering: {i}" for i in sorted(set(a) - set(b))]
    problems += [f"only in kubectl kustomize: {i}" for i in sorted(set(b) - set(a))]
    for i in sorted(set(a) & set(b)):
        if a[i] != b[i]:
            problems.append(
                f"{i} differs:\n  built-in: {json.dumps(a[i], sort_keys=True)}\n"
                f"  kubectl:  {json.dumps(b[i], sort_keys=True)}"
            )
    if len(a) != len(ours) or len(b) != len(theirs):
        problems.append("duplicate kind/namespace/name in a rendering")
    return problems


# === validation ===


class Validator:
    """Strict schema validation for a set of Kubernetes versions."""

    def __init__(self, schema_dir: Path):
        import jsonschema
        import kubernetes_validate
        from kubernetes_validate import utils

        self._kv = kubernetes_validate
        self.versions = [OLDEST_KUBERNETES, utils.latest_version()]
        with open(schema_dir / "secretproviderclass-v1.json", encoding="utf-8") as f:
            spc_schema = json.load(f)
        self._spc = jsonschema.Draft202012Validator(spc_schema)

    def validate(self, doc: dict, where: str) -> None:
        if doc.get("kind") == "SecretProviderClass":
            self._validate_spc(doc, where)
            return
        for version in self.versions:
            try:
                self._kv.validate(doc, version, strict=True)
            except self._kv.utils.SchemaNotFoundError as e:
                raise ValidationFailure(f"{where}: {e.message}") from e
            except self._kv.utils.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                raise ValidationFailure(
                    f"{where}: {identity(doc)} is invalid for Kubernetes {version} at "
                    f"/{path}: {e.message}"
                ) from e

    def _validate_spc(self, doc: dict, where: str) -> None:
        errors = sorted(self._spc.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            path = "/".join(str(p) for p in e.path)
            raise ValidationFailure(f"{where}: {identity(doc)} at /{path}: {e.message}")
        check_objects(doc["spec"]["parameters"].get("objects"), f"{where}: {identity(doc)}")


def check_objects(objects: str | None, where: str) -> None:
    """The `objects` parameter as the provider reads it: YAML with an `array`
    of YAML strings, each a mapping with objectName and objectType."""
    if objects is None:
        raise ValidationFailure(f"{where}: parameters.objects is missing")
    try:
        parsed = yaml.safe_load(objects)
        items = parsed["array"]
        if not isinstance(items, list) or not items:
            raise ValueError("array is empty")
        for item in items:
            obj = yaml.safe_load(item)
            if not isinstance(obj, dict) or not obj.get("objectName") or not obj.get("objectType"):
                raise ValueError(f"object {item!r} lacks objectName or objectType")
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise ValidationFailure(f"{where}: parameters.objects is not valid: {e}") from e


# === check ===


def kustomization_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "deploy").rglob(KUSTOMIZATION))


def check(root: Path) -> int:
    validator = Validator(root / "scripts" / "schemas")
    used: set[Path] = set()
    compared = 0
    count = 0
    for directory in kustomization_dirs(root):
        rel = directory.relative_to(root)
        docs = render(directory, used)
        theirs = kubectl_kustomize(directory)
        if theirs is not None:
            problems = same_rendering(docs, theirs)
            if problems:
                raise RenderError(f"{rel}: built-in rendering differs from kubectl kustomize:\n"
                                  + "\n".join(problems))
            compared += 1
        for doc in docs:
            validator.validate(doc, f"{rel} (rendered)")
            count += 1
    for path in sorted((root / "deploy").rglob("*.yaml")):
        path = path.resolve()
        rel = path.relative_to(root.resolve()).as_posix()
        if path in used:
            continue
        if rel in OTHER_CONFIGS:
            check_other_config(path, rel)
            continue
        for doc in load_documents(path):
            validator.validate(doc, rel)
            count += 1
    how = (f"{compared} also rendered by kubectl kustomize, identical" if compared
           else "kubectl kustomize not available: built-in renderer only")
    print(f"manifests: {len(kustomization_dirs(root))} Kustomizations rendered ({how}); "
          f"{count} manifests valid for Kubernetes {' and '.join(validator.versions)} (strict)")
    return 0


def check_other_config(path: Path, rel: str) -> None:
    api, kind = OTHER_CONFIGS[rel]
    docs = load_documents(path)
    if len(docs) != 1 or docs[0].get("apiVersion") != api or docs[0].get("kind") != kind:
        raise ValidationFailure(f"{rel}: expected one {kind} of {api}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="render and validate everything under deploy/")
    c.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    r = sub.add_parser("render", help="print the built-in rendering of a Kustomization")
    r.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check(args.root.resolve())
        yaml.safe_dump_all(render(args.directory), sys.stdout, sort_keys=False)
        return 0
    except (RenderError, ValidationFailure) as e:
        print(f"manifests: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
