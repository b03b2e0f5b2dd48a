#!/usr/bin/env python3
"""Renders everything that installs the provider with the real tools and
validates the result, without a cluster (part of `make test`):

- every Kustomization under deploy/ with `kubectl kustomize`;
- the Helm chart charts/akv-csi-provider with `helm lint --strict` and
  `helm template`, for its default values and for every value set in
  charts/akv-csi-provider/ci/ (upstream's value names, every toggle, ...);
- the chart with default values must give the same objects as
  `kubectl kustomize deploy/` (the two install paths cannot drift apart);
- every install command in README.md and docs/install.md (`helm upgrade
  --install` of our chart, `kubectl apply -k`, `kubectl apply -f`) is
  rendered the way it is written; a `helm` command for the driver's chart
  must use a supported chart version and charts/secrets-store-csi-driver-values.yaml;
- the driver's values file against its schema, and the Flux HelmRelease
  (deploy/examples/flux) must carry exactly those values;
- every other manifest under deploy/ on its own.

Validation: kubernetes-validate's strict schemas (unknown fields are errors)
for the oldest Kubernetes the driver's chart supports and the newest schema
set installed; the custom resources those schemas lack (SecretProviderClass,
Flux's HelmRepository, HelmRelease, GitRepository and Kustomization)
against scripts/schemas/*.json, strictly, plus a parse of a
SecretProviderClass's `objects` parameter the way the provider reads it.

kubectl and helm come from .tools/bin (scripts/tools.sh), else from PATH.

    manifests.py check [--root DIR]   # what `make test` runs
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZATION = "kustomization.yaml"
CHART = "charts/akv-csi-provider"
DRIVER_VALUES = "charts/secrets-store-csi-driver-values.yaml"
FLUX_HELMRELEASE = "deploy/examples/flux/driver-helmrelease.yaml"
NAMESPACE = "kube-system"

# Oldest Kubernetes the driver's Helm chart 1.6.0 supports (kubeVersion >=1.30).
OLDEST_KUBERNETES = "1.30"

# Driver chart versions the install commands may name (docs/install.md,
# "Which driver"): the ones the kind e2e runs.
SUPPORTED_DRIVER_CHARTS = {"1.5.6", "1.6.0"}

# Documents with their own schema in scripts/schemas: (apiVersion, kind) -> file.
LOCAL_SCHEMAS = {
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"): "secretproviderclass-v1.json",
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"): "flux-helmrepository-v1.json",
    ("source.toolkit.fluxcd.io/v1", "GitRepository"): "flux-gitrepository-v1.json",
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): "flux-helmrelease-v2.json",
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"): "flux-kustomization-v1.json",
}

# YAML files under deploy/ that are not Kubernetes manifests, with the
# (apiVersion, kind) they must have.
OTHER_CONFIGS = {
    "deploy/e2e/kind.yaml": ("kind.x-k8s.io/v1alpha4", "Cluster"),
}

# Documents whose install commands are checked.
INSTALL_DOCS = ("README.md", "docs/install.md")


class RenderError(Exception):
    """A rendering that failed or gave the wrong objects."""


class ValidationFailure(Exception):
    """A manifest that does not validate."""


# === tools ===


def tool(name: str, root: Path = ROOT) -> str:
    local = root / ".tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RenderError(f"{name} not found: run scripts/tools.sh (installs it into .tools/bin)")
    return found


def run(args: list[str], cwd: Path) -> str:
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RenderError(f"`{shlex.join(args)}` failed:\n{out.stderr.strip()}")
    return out.stdout


def parse(text: str, where: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise RenderError(f"{where}: document {i + 1} is not a mapping")
    return docs


def load_documents(path: Path) -> list[dict]:
    """All non-empty YAML documents of a file; each must be a mapping."""
    return parse(path.read_text(encoding="utf-8"), str(path))


def kustomize(directory: Path, root: Path = ROOT) -> list[dict]:
    """`kubectl kustomize DIR`, parsed."""
    return parse(run([tool("kubectl", root), "kustomize", str(directory)], root), str(directory))


def helm_template(args: list[str], root: Path = ROOT, release: str = "akv-csi-provider",
                  chart: str = CHART) -> list[dict]:
    """`helm template RELEASE CHART ARGS` (namespace kube-system unless ARGS
    name one), parsed."""
    cmd = [tool("helm", root), "template", release, chart, "--kube-version", OLDEST_KUBERNETES]
    if not any(a in ("-n", "--namespace") or a.startswith("--namespace=") for a in args):
        cmd += ["--namespace", NAMESPACE]
    return parse(run(cmd + args, root), shlex.join(cmd + args))


def helm_lint(args: list[str], root: Path = ROOT) -> None:
    run([tool("helm", root), "lint", "--strict", CHART, "--kube-version", OLDEST_KUBERNETES]
        + args, root)


def value_sets(root: Path = ROOT) -> list[Path]:
    return sorted((root / CHART / "ci").glob("*.yaml"))


# === validation ===


def identity(doc: dict) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    return (doc.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


class Validator:
    """Strict schema validation for a set of Kubernetes versions."""

    def __init__(self, schema_dir: Path):
        import jsonschema
        import kubernetes_validate
        from kubernetes_validate import utils

        self._kv = kubernetes_validate
        self.versions = [OLDEST_KUBERNETES, utils.latest_version()]
        self._local = {}
        for key, name in LOCAL_SCHEMAS.items():
            with open(schema_dir / name, encoding="utf-8") as f:
                self._local[key] = jsonschema.Draft202012Validator(json.load(f))
        with open(schema_dir / "driver-values.json", encoding="utf-8") as f:
            self.driver_values = jsonschema.Draft202012Validator(json.load(f))

    def validate(self, doc: dict, where: str) -> None:
        local = self._local.get((doc.get("apiVersion"), doc.get("kind")))
        if local is not None:
            first_error(local, doc, f"{where}: {identity(doc)}")
            if doc.get("kind") == "SecretProviderClass":
                check_objects(doc["spec"]["parameters"].get("objects"), f"{where}: {identity(doc)}")
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


def first_error(validator, doc, where: str) -> None:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        path = "/".join(str(p) for p in e.path)
        raise ValidationFailure(f"{where} at /{path}: {e.message}")


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


# === comparisons ===


def differences(a_name: str, a_docs: list[dict], b_name: str, b_docs: list[dict]) -> list[str]:
    """Differences between two sets of objects, as readable lines (empty if equal)."""
    a = {identity(d): d for d in a_docs}
    b = {identity(d): d for d in b_docs}
    problems = [f"only in {a_name}: {i}" for i in sorted(set(a) - set(b))]
    problems += [f"only in {b_name}: {i}" for i in sorted(set(b) - set(a))]
    for i in sorted(set(a) & set(b)):
        if a[i] != b[i]:
            problems.append(
                f"{i} differs:\n  {a_name}: {json.dumps(a[i], sort_keys=True)}\n"
                f"  {b_name}: {json.dumps(b[i], sort_keys=True)}"
            )
    if len(a) != len(a_docs) or len(b) != len(b_docs):
        problems.append("duplicate kind/namespace/name in a rendering")
    return problems


# === install commands in the docs ===


def shell_commands(text: str) -> list[str]:
    """The commands of ```sh blocks, continuation lines joined."""
    commands, block, pending = [], False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):  # fences may be indented (lists)
            block = line.strip() in ("```sh", "```bash", "```shell") if not block else False
            pending = ""
            continue
        if not block:
            continue
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = " ".join((pending + line).split())
        pending = ""
        if command:
            commands += [c.strip() for c in command.split("&&") if c.strip()]
    return commands


def install_commands(root: Path = ROOT) -> list[tuple[str, list[str]]]:
    """(document, argv) of every helm/kubectl install command in INSTALL_DOCS."""
    found = []
    for rel in INSTALL_DOCS:
        path = root / rel
        if not path.exists():
            continue
        for command in shell_commands(path.read_text(encoding="utf-8")):
            argv = shlex.split(command)
            if argv[:3] == ["helm", "upgrade", "--install"] or argv[:2] == ["helm", "install"] \
                    or argv[:3] in (["kubectl", "apply", "-k"], ["kubectl", "apply", "-f"]):
                found.append((rel, argv))
    return found


# Helm flags that matter to a cluster only, each with whether it takes a value.
HELM_CLUSTER_FLAGS = {"--wait": False, "--atomic": False, "--create-namespace": False,
                      "--timeout": True, "--kube-context": True, "--reuse-values": False}


def check_helm_command(argv: list[str], where: str, root: Path,
                       validator: Validator) -> tuple[str, int]:
    rest = argv[3:] if argv[1] == "upgrade" else argv[2:]
    release, chart, flags = rest[0], rest[1], rest[2:]
    kept, repo, version, values = [], None, None, []
    i = 0
    while i < len(flags):
        flag = flags[i]
        name = flag.split("=", 1)[0]
        takes = "=" not in flag
        if name in HELM_CLUSTER_FLAGS:
            i += 2 if HELM_CLUSTER_FLAGS[name] and takes else 1
            continue
        value = flag.split("=", 1)[1] if not takes else (flags[i + 1] if i + 1 < len(flags) else "")
        if name == "--repo":
            repo = value
        elif name == "--version":
            version = value
        elif name in ("-f", "--values"):
            values.append(value)
        step = 2 if takes and name in ("--repo", "--version", "-f", "--values", "--set",
                                      "--set-string", "-n", "--namespace") else 1
        if name not in ("--repo", "--version"):
            kept += flags[i:i + step]
        i += step
    if chart.rstrip("/") == CHART:
        docs = helm_template(kept, root, release=release)
        for doc in docs:
            validator.validate(doc, f"{where}: `{shlex.join(argv)}`")
        return ("chart", len(docs))
    if repo is None or chart != "secrets-store-csi-driver":
        raise ValidationFailure(f"{where}: `{shlex.join(argv)}`: an unknown chart")
    if version not in SUPPORTED_DRIVER_CHARTS:
        raise ValidationFailure(f"{where}: `{shlex.join(argv)}`: driver chart version {version} "
                                f"is not one of {sorted(SUPPORTED_DRIVER_CHARTS)}")
    if values != [DRIVER_VALUES]:
        raise ValidationFailure(f"{where}: `{shlex.join(argv)}`: the driver must be installed "
                                f"with -f {DRIVER_VALUES}")
    return ("driver", 0)


def check_install_commands(root: Path, validator: Validator) -> dict[str, int]:
    counts = {"chart": 0, "driver": 0, "kustomize": 0, "file": 0}
    for rel, argv in install_commands(root):
        where = f"{rel}: `{shlex.join(argv)}`"
        if argv[0] == "helm":
            kind, _ = check_helm_command(argv, rel, root, validator)
            counts[kind] += 1
        elif argv[2] == "-k":
            for doc in kustomize(root / argv[3], root):
                validator.validate(doc, where)
            counts["kustomize"] += 1
        else:
            target = root / argv[3]
            if not target.is_file():
                raise ValidationFailure(f"{where}: {argv[3]} does not exist")
            for doc in load_documents(target):
                validator.validate(doc, where)
            counts["file"] += 1
    return counts


# === check ===


def kustomization_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "deploy").rglob(KUSTOMIZATION))


def patch_files(root: Path) -> set[Path]:
    """Files that Kustomizations use as patches (not whole manifests)."""
    used = set()
    for directory in kustomization_dirs(root):
        (k,) = load_documents(directory / KUSTOMIZATION)
        for patch in k.get("patches") or []:
            if "path" in patch:
                used.add((directory / patch["path"]).resolve())
    return used


def check_other_config(path: Path, rel: str) -> None:
    api, kind = OTHER_CONFIGS[rel]
    docs = load_documents(path)
    if len(docs) != 1 or docs[0].get("apiVersion") != api or docs[0].get("kind") != kind:
        raise ValidationFailure(f"{rel}: expected one {kind} of {api}")


def check_driver_values(root: Path, validator: Validator) -> None:
    (values,) = load_documents(root / DRIVER_VALUES)
    first_error(validator.driver_values, values, DRIVER_VALUES)
    (release,) = load_documents(root / FLUX_HELMRELEASE)
    if release["spec"].get("values") != values:
        raise ValidationFailure(f"{FLUX_HELMRELEASE}: spec.values differ from {DRIVER_VALUES}")


def check(root: Path) -> int:
    validator = Validator(root / "scripts" / "schemas")
    count = 0

    # Kustomizations, with kubectl kustomize.
    dirs = kustomization_dirs(root)
    rendered: dict[Path, list[dict]] = {}
    for directory in dirs:
        rel = directory.relative_to(root)
        rendered[directory] = kustomize(directory, root)
        for doc in rendered[directory]:
            validator.validate(doc, f"{rel} (kubectl kustomize)")
            count += 1

    # Every other YAML file under deploy/ on its own.
    patches = patch_files(root)
    for path in sorted((root / "deploy").rglob("*.yaml")):
        rel = path.relative_to(root).as_posix()
        if path.name == KUSTOMIZATION or path.resolve() in patches:
            continue
        if rel in OTHER_CONFIGS:
            check_other_config(path, rel)
            continue
        for doc in load_documents(path):
            validator.validate(doc, rel)
            count += 1

    # The chart: lint and template, default values and each value set.
    sets = [[]] + [["-f", str(p.relative_to(root))] for p in value_sets(root)]
    for args in sets:
        helm_lint(args, root)
        for doc in helm_template(args, root):
            validator.validate(doc, f"helm template {CHART} {shlex.join(args)}".strip())
            count += 1

    # Chart defaults == kubectl kustomize deploy/.
    problems = differences("helm template (defaults)", helm_template([], root),
                           "kubectl kustomize deploy", rendered[root / "deploy"])
    if problems:
        raise RenderError("the chart with default values and deploy/ differ:\n"
                          + "\n".join(problems))

    check_driver_values(root, validator)
    commands = check_install_commands(root, validator)

    print(f"manifests: {len(dirs)} Kustomizations rendered by kubectl kustomize; chart "
          f"linted and rendered by helm with {len(sets)} value sets (defaults + "
          f"{', '.join(p.name for p in value_sets(root))}), defaults identical to deploy/; "
          f"{count} manifests valid for Kubernetes {' and '.join(validator.versions)} "
          f"(strict); driver values and Flux HelmRelease agree; install commands in the "
          f"docs rendered: {commands['chart']} helm (chart), {commands['driver']} helm "
          f"(driver), {commands['kustomize']} kubectl apply -k, {commands['file']} "
          f"kubectl apply -f")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="render and validate the chart and deploy/")
    c.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    try:
        return check(args.root.resolve())
    except (RenderError, ValidationFailure) as e:
        print(f"manifests: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
