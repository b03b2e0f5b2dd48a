#!/usr/bin/env python3
"""Tests of scripts/manifests.py: the built-in Kustomization renderer (each
supported feature, and a clear error for each unsupported one), the
validation (it must reject what a cluster would reject), and the shipped
DaemonSet's drop-in shape (the upstream fields users and tools rely on).

Run with the tools' Python: .tools/venv/bin/python scripts/manifests_test.py
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import manifests  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "scripts" / "schemas"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
        - name: init
          image: registry.example:5000/tools/init:1.0
      containers:
        - name: web
          image: web
          args: [--a]
"""


class Tree:
    """A temporary directory of files given as {relative path: text}."""

    def __init__(self, files: dict[str, str]):
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        for rel, text in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))

    def render(self, rel: str = "."):
        return manifests.render(self.root / rel)

    def close(self):
        self._tmp.cleanup()


def kustomization(body: str) -> str:
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        + textwrap.dedent(body)
    )


class RendererTest(unittest.TestCase):
    def tree(self, files: dict[str, str]) -> Tree:
        tree = Tree(files)
        self.addCleanup(tree.close)
        return tree

    def test_namespace_applies_to_namespaced_kinds_only(self):
        tree = self.tree({
            "kustomization.yaml": kustomization("namespace: ops\nresources: [all.yaml]\n"),
            "all.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: x}\n"
                        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ops}\n",
        })
        sa, ns = tree.render()
        self.assertEqual(sa["metadata"]["namespace"], "ops")
        self.assertNotIn("namespace", ns["metadata"])

    def test_namespace_refuses_kinds_it_does_not_know(self):
        tree = self.tree({
            "kustomization.yaml": kustomization("namespace: ops\nresources: [r.yaml]\n"),
            "r.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n"
                      "metadata: {name: rb}\n",
        })
        with self.assertRaisesRegex(manifests.RenderError, "RoleBinding is namespaced"):
            tree.render()

    def test_images_retag_and_rename_by_name_only(self):
        tree = self.tree({
            "kustomization.yaml": kustomization(
                """\
                resources: [d.yaml]
                images:
                  - name: web
                    newName: registry.example/team/web
                    newTag: "2.0"
                  - name: registry.example:5000/tools/init
                    digest: sha256:abc
                  - name: unrelated
                    newTag: "9"
                """
            ),
            "d.yaml": DEPLOYMENT,
        })
        (d,) = tree.render()
        spec = d["spec"]["template"]["spec"]
        self.assertEqual(spec["containers"][0]["image"], "registry.example/team/web:2.0")
        self.assertEqual(spec["initContainers"][0]["image"],
                         "registry.example:5000/tools/init@sha256:abc")

    def test_retag_keeps_what_the_entry_does_not_set(self):
        self.assertEqual(manifests.retag("a:1", {"name": "a", "newName": "b"}), "b:1")
        self.assertEqual(manifests.retag("a@sha256:x", {"name": "a", "newTag": "2"}), "a:2")
        self.assertEqual(manifests.retag("host:5000/a", {"name": "host"}), "host:5000/a")
        self.assertEqual(manifests.split_image("host:5000/a:1@sha256:x"),
                         ("host:5000/a", "1", "sha256:x"))

    def test_overlay_patches_a_base_in_another_directory(self):
        tree = self.tree({
            "base/kustomization.yaml": kustomization(
                "namespace: apps\nresources: [d.yaml]\nimages: [{name: web, newTag: '1'}]\n"),
            "base/d.yaml": DEPLOYMENT,
            "overlay/kustomization.yaml": kustomization(
                """\
                resources: [../base]
                images: [{name: web, newTag: e2e}]
                patches:
                  - target: {kind: Deployment, name: web}
                    path: ops.yaml
                  - target: {kind: Deployment, name: web, namespace: apps}
                    patch: |-
                      - op: remove
                        path: /spec/template/spec/initContainers
                """
            ),
            "overlay/ops.yaml": """\
                - op: add
                  path: /spec/template/spec/containers/0/args/-
                  value: --b
                - op: add
                  path: /spec/template/spec/containers/0/args/0
                  value: --first
                - op: replace
                  path: /spec/selector/matchLabels/app
                  value: web2
                - op: add
                  path: /metadata/annotations
                  value: {a~b/c: d}
                - op: replace
                  path: /metadata/annotations/a~0b~1c
                  value: e
            """,
        })
        (d,) = tree.render("overlay")
        spec = d["spec"]["template"]["spec"]
        self.assertEqual(spec["containers"][0]["args"], ["--first", "--a", "--b"])
        self.assertEqual(spec["containers"][0]["image"], "web:e2e")
        self.assertNotIn("initContainers", spec)
        self.assertEqual(d["spec"]["selector"]["matchLabels"]["app"], "web2")
        self.assertEqual(d["metadata"]["annotations"], {"a~b/c": "e"})
        self.assertEqual(d["metadata"]["namespace"], "apps")

    def test_patch_errors_name_the_problem(self):
        cases = {
            "no such member": "- op: replace\n  path: /spec/missing\n  value: 1\n",
            "out of range": "- op: add\n  path: /spec/template/spec/containers/5\n  value: {}\n",
            "not supported": "- op: move\n  from: /a\n  path: /b\n",
            "list of operations": "spec: {replicas: 2}\n",
        }
        for message, ops in cases.items():
            with self.subTest(message):
                tree = self.tree({
                    "kustomization.yaml": kustomization(
                        "resources: [d.yaml]\npatches:\n"
                        "  - {target: {kind: Deployment, name: web}, path: p.yaml}\n"),
                    "d.yaml": DEPLOYMENT,
                    "p.yaml": ops,
                })
                with self.assertRaisesRegex(manifests.RenderError, message):
                    tree.render()

    def test_patch_target_must_match_exactly_one_resource(self):
        tree = self.tree({
            "kustomization.yaml": kustomization(
                "resources: [d.yaml]\npatches:\n"
                "  - target: {kind: Deployment, name: other}\n"
                "    patch: '[{op: remove, path: /spec}]'\n"),
            "d.yaml": DEPLOYMENT,
        })
        with self.assertRaisesRegex(manifests.RenderError, "matches 0 resources"):
            tree.render()

    def test_unsupported_fields_are_errors_not_ignored(self):
        cases = {
            "commonLabels": "resources: [d.yaml]\ncommonLabels: {a: b}\n",
            "labelSelector": "resources: [d.yaml]\npatches:\n"
                             "  - {target: {labelSelector: a=b}, patch: '[]'}\n",
            "does not exist": "resources: [missing.yaml]\n",
        }
        for message, body in cases.items():
            with self.subTest(message):
                tree = self.tree({"kustomization.yaml": kustomization(body), "d.yaml": DEPLOYMENT})
                with self.assertRaisesRegex(manifests.RenderError, message):
                    tree.render()

    def test_same_rendering_reports_differences(self):
        a = [{"kind": "A", "metadata": {"name": "x"}, "spec": 1}]
        b = [{"kind": "A", "metadata": {"name": "x"}, "spec": 2}]
        self.assertEqual(manifests.same_rendering(a, a), [])
        self.assertRegex(manifests.same_rendering(a, b)[0], "differs")
        self.assertRegex(manifests.same_rendering(a, [])[0], "only in the built-in")


class ValidatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.validator = manifests.Validator(SCHEMAS)

    def load(self, rel: str) -> list[dict]:
        return manifests.load_documents(ROOT / rel)

    def test_a_misspelt_field_is_rejected(self):
        (pod,) = self.load("deploy/examples/pod.yaml")
        pod["spec"]["containers"][0]["volumeMount"] = []
        with self.assertRaisesRegex(manifests.ValidationFailure, "volumeMount"):
            self.validator.validate(pod, "test")

    def test_a_wrong_type_is_rejected(self):
        (pod,) = self.load("deploy/examples/pod.yaml")
        pod["spec"]["containers"][0]["command"] = "/bin/sleep 10000"
        with self.assertRaisesRegex(manifests.ValidationFailure, "command"):
            self.validator.validate(pod, "test")

    def test_a_kind_without_schema_is_rejected(self):
        with self.assertRaisesRegex(manifests.ValidationFailure, "Couldn't find schema"):
            self.validator.validate({"apiVersion": "example.com/v1", "kind": "Widget",
                                     "metadata": {"name": "w"}}, "test")

    def test_secretproviderclass_schema_is_strict(self):
        spc = self.load("deploy/examples/secretproviderclass-sync.yaml")[0]
        self.validator.validate(spc, "ok")
        broken = {
            "unknown field": lambda s: s["spec"].update(secretObject=[]),
            "number parameter": lambda s: s["spec"]["parameters"].update(objectVersionHistory=2),
            "sync without key": lambda s: s["spec"]["secretObjects"][0]["data"][0].pop("key"),
            "v1alpha1": lambda s: s.update(apiVersion="secrets-store.csi.x-k8s.io/v1alpha1"),
            "objects without objectType": lambda s: s["spec"]["parameters"].update(
                objects="array:\n  - |\n    objectName: x\n"),
            "objects not a list": lambda s: s["spec"]["parameters"].update(objects="array: x"),
        }
        for name, breaks in broken.items():
            with self.subTest(name):
                spc = self.load("deploy/examples/secretproviderclass-sync.yaml")[0]
                breaks(spc)
                with self.assertRaises(manifests.ValidationFailure):
                    self.validator.validate(spc, name)


class ShippedManifestsTest(unittest.TestCase):
    """The DaemonSet as users get it, compared with upstream's drop-in shape."""

    @classmethod
    def setUpClass(cls):
        docs = manifests.render(ROOT / "deploy")
        cls.by_kind = {d["kind"]: d for d in docs}
        cls.kinds = sorted(d["kind"] for d in docs)

    def test_objects_and_names_are_upstreams(self):
        self.assertEqual(self.kinds, ["DaemonSet", "ServiceAccount"])
        for doc in self.by_kind.values():
            self.assertEqual(doc["metadata"]["name"], "csi-secrets-store-provider-azure")
            self.assertEqual(doc["metadata"]["namespace"], "kube-system")

    def test_daemonset_is_a_drop_in(self):
        ds = self.by_kind["DaemonSet"]
        self.assertEqual(ds["metadata"]["labels"]["app"], "csi-secrets-store-provider-azure")
        pod = ds["spec"]["template"]["spec"]
        self.assertEqual(pod["serviceAccountName"], "csi-secrets-store-provider-azure")
        self.assertTrue(pod["hostNetwork"])
        self.assertEqual(pod["nodeSelector"], {"kubernetes.io/os": "linux"})
        self.assertEqual(pod["tolerations"], [{"operator": "Exists"}])
        (c,) = pod["containers"]
        self.assertEqual(c["name"], "provider-azure-installer")
        self.assertEqual(c["args"], [
            "--endpoint=unix:///provider/azure.sock", "--construct-pem-chain=true",
            "--healthz-port=8989", "--healthz-path=/healthz", "--healthz-timeout=5s",
        ])
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": 8989})
        self.assertIn("readinessProbe", c)
        self.assertIn({"containerPort": 8898, "name": "metrics", "protocol": "TCP"}, c["ports"])
        (mount,) = c["volumeMounts"]
        self.assertEqual(mount["mountPath"], "/provider")
        (vol,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        self.assertEqual(vol["hostPath"]["path"], "/var/run/secrets-store-csi-providers")

    def test_image_tag_is_the_crate_version(self):
        cargo = (ROOT / "Cargo.toml").read_text()
        version = next(line.split('"')[1] for line in cargo.splitlines()
                       if line.startswith("version = "))
        c = self.by_kind["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["image"], f"akv-csi-provider:{version}")

    def test_daemonset_is_locked_down_without_a_cpu_limit(self):
        c = self.by_kind["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
        sc = c["securityContext"]
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
        self.assertEqual(set(c["resources"]["requests"]), {"cpu", "memory"})
        self.assertEqual(set(c["resources"]["limits"]), {"memory"})

    def test_examples_are_the_blogs_objects(self):
        pod, pod_env = (manifests.load_documents(ROOT / f"deploy/examples/{f}")[0]
                        for f in ("pod.yaml", "pod-with-env.yaml"))
        for p in (pod, pod_env):
            self.assertEqual(p["metadata"], {"name": "busybox-secrets-store-inline",
                                             "namespace": "blog-post"})
            self.assertEqual(p["spec"]["serviceAccountName"], "kv-access-account")
            volume = p["spec"]["volumes"][0]["csi"]
            self.assertEqual(volume["volumeAttributes"],
                             {"secretProviderClass": "azure-kv-password-provider"})
        self.assertNotIn("env", pod["spec"]["containers"][0])
        self.assertEqual(pod_env["spec"]["containers"][0]["env"], [{
            "name": "PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "secret-blog-post", "key": "Password"}},
        }])
        ns, sa = manifests.load_documents(ROOT / "deploy/examples/setup.yaml")
        self.assertEqual((ns["kind"], ns["metadata"]["name"]), ("Namespace", "blog-post"))
        self.assertEqual(sa["metadata"], {"name": "kv-access-account", "namespace": "blog-post"})


if __name__ == "__main__":
    unittest.main()
