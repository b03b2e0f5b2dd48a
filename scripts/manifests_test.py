#!/usr/bin/env python3
"""Tests of scripts/manifests.py and of what it renders with the real tools
(kubectl kustomize, helm template): the validation must reject what a
cluster would reject; the shipped DaemonSet keeps upstream's drop-in shape;
the chart maps upstream's value names (and ours) to the right flags and
fields; the docs' install commands are found and checked.

Run with the tools' Python: .tools/venv/bin/python scripts/manifests_test.py
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import manifests  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "scripts" / "schemas"


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
        docs = manifests.kustomize(ROOT / "deploy")
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


def daemonset(docs: list[dict]) -> dict:
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
    return ds


def container(docs: list[dict]) -> dict:
    return daemonset(docs)["spec"]["template"]["spec"]["containers"][0]


class ChartTest(unittest.TestCase):
    """helm template of charts/akv-csi-provider with each value set."""

    @classmethod
    def setUpClass(cls):
        cls.validator = manifests.Validator(SCHEMAS)
        ci = f"{manifests.CHART}/ci"
        cls.defaults = manifests.helm_template([])
        cls.upstream = manifests.helm_template(["-f", f"{ci}/upstream-values.yaml"])
        cls.toggles = manifests.helm_template(["-f", f"{ci}/toggles-values.yaml"])
        cls.disabled = manifests.helm_template(["-f", f"{ci}/disabled-values.yaml"])

    def test_defaults_are_deploys_objects(self):
        self.assertEqual(manifests.differences(
            "chart", self.defaults, "kustomize", manifests.kustomize(ROOT / "deploy")), [])

    def test_a_difference_from_deploy_is_reported(self):
        changed = manifests.helm_template(["--set", "linux.healthzPort=8990"])
        problems = manifests.differences("chart", changed, "kustomize",
                                         manifests.kustomize(ROOT / "deploy"))
        self.assertEqual(len(problems), 1)
        self.assertIn("DaemonSet", problems[0])

    def test_upstream_value_names_carry_over(self):
        c = container(self.upstream)
        pod = daemonset(self.upstream)["spec"]["template"]
        self.assertEqual(c["image"], "registry.example.com/akv-csi-provider:0.1.0")
        self.assertEqual(c["imagePullPolicy"], "Always")
        self.assertEqual(c["args"], [
            "--endpoint=unix:///provider/azure.sock", "--log-format-json=true", "-v=2",
            "--construct-pem-chain=true", "--write-cert-and-key-in-separate-files=true",
            "--custom-user-agent=contoso/1.0", "--healthz-port=8990", "--healthz-path=/healthz",
            "--healthz-timeout=10s",
        ])
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": 8990})
        self.assertEqual(c["resources"]["limits"], {"cpu": "50m", "memory": "100Mi"})
        spec = pod["spec"]
        self.assertEqual(spec["nodeSelector"], {"kubernetes.io/os": "linux", "agentpool": "system"})
        self.assertEqual(spec["tolerations"], [{"key": "CriticalAddonsOnly", "operator": "Exists"}])
        self.assertEqual(spec["priorityClassName"], "system-node-critical")
        self.assertEqual(spec["imagePullSecrets"], [{"name": "regcred"}])
        self.assertEqual(pod["metadata"]["labels"]["team"], "platform")
        self.assertEqual(pod["metadata"]["annotations"], {"prometheus.io/scrape": "true"})
        (vol,) = spec["volumes"]
        self.assertEqual(vol["hostPath"]["path"], "/etc/kubernetes/secrets-store-csi-providers")
        self.assertEqual(daemonset(self.upstream)["spec"]["updateStrategy"]["rollingUpdate"],
                         {"maxUnavailable": 2})

    def test_every_toggle(self):
        c = container(self.toggles)
        ds = daemonset(self.toggles)
        spec = ds["spec"]["template"]["spec"]
        self.assertEqual(c["image"], "registry.example.com/akv-csi-provider@sha256:"
                         + "0123456789abcdef" * 4)
        self.assertIn("--construct-pem-chain=false", c["args"])
        self.assertIn("--prometheus-port=9090", c["args"])
        self.assertIn({"containerPort": 9090, "name": "metrics", "protocol": "TCP"}, c["ports"])
        for arg in ("-v=5", "--cache-ttl=30s", "--max-concurrent-fetches=8", "--keyvault-qps=50",
                    "--request-timeout=10s", "--mount-timeout=60s",
                    "--max-call-send-msg-size=8388608", "--admin-bind-address=0.0.0.0",
                    "--cloud-name=AzureUSGovernmentCloud", "--sni-name=proxy.example.com",
                    "--token-proxy-url=https://token-proxy.example.com",
                    "--nmi-endpoint=http://127.0.0.1:2579", "--metrics-backend=prometheus"):
            self.assertIn(arg, c["args"])
        self.assertFalse(spec["hostNetwork"])
        self.assertEqual(spec["dnsPolicy"], "ClusterFirst")
        self.assertNotIn("readinessProbe", c)
        self.assertNotIn("resources", c)
        self.assertNotIn("tolerations", spec)
        self.assertNotIn("affinity", spec)
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/livez", "port": 8990})
        self.assertEqual([m["name"] for m in c["volumeMounts"]], ["providervol", "proxy-ca"])
        self.assertEqual([e["name"] for e in c["env"]], ["HTTPS_PROXY", "SSL_CERT_FILE"])
        self.assertEqual(ds["spec"]["updateStrategy"], {"type": "OnDelete"})
        self.assertEqual(ds["metadata"]["labels"], {"app": "csi-secrets-store-provider-azure",
                                                    "team": "platform"})
        self.assertEqual([d["kind"] for d in self.toggles], ["DaemonSet"])  # rbac.install false

    def test_release_workflow_can_pin_the_digest(self):
        # .github/workflows/release.yml rewrites these two lines of values.yaml.
        values = (ROOT / manifests.CHART / "values.yaml").read_text().splitlines()
        self.assertIn("    repository: akv-csi-provider", values)
        self.assertIn('    digest: ""', values)
        workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text()
        self.assertIn("s|^    repository: akv-csi-provider$|", workflow)
        self.assertIn('s|^    digest: \\"\\"$|', workflow)

    def test_linux_disabled_leaves_the_service_account(self):
        self.assertEqual([d["kind"] for d in self.disabled], ["ServiceAccount"])

    def test_every_flag_the_chart_can_pass_exists(self):
        cli = (ROOT / "src" / "cli.rs").read_text()
        fields = set(re.findall(r"pub (\w+):", cli))
        for docs in (self.defaults, self.upstream, self.toggles):
            for arg in container(docs)["args"]:
                name = arg.split("=", 1)[0].lstrip("-")
                if name == "v":
                    continue
                self.assertIn(name.replace("-", "_"), fields, arg)

    def test_every_rendering_validates(self):
        for docs in (self.defaults, self.upstream, self.toggles, self.disabled):
            for doc in docs:
                self.validator.validate(doc, "test")


class NotesTest(unittest.TestCase):
    """NOTES.txt, which `helm template` does not render: rendered here from a
    copy of the chart where it is a YAML string."""

    def notes(self, args: list[str]) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            chart = Path(tmp) / "chart"
            shutil.copytree(ROOT / manifests.CHART, chart)
            text = (chart / "templates" / "NOTES.txt").read_text()
            (chart / "templates" / "NOTES.txt").unlink()
            (chart / "templates" / "notes.yaml").write_text(
                "notes: |\n" + "".join(f"  {line}\n" for line in text.splitlines()))
            (doc,) = manifests.helm_template(args + ["--show-only", "templates/notes.yaml"],
                                             chart=str(chart))
            return doc["notes"]

    def test_defaults_have_no_warning(self):
        self.assertNotIn("NOTE:", self.notes([]))

    def test_upstream_only_values_are_named(self):
        notes = self.notes(["-f", f"{manifests.CHART}/ci/upstream-values.yaml",
                            "--set", "windows.enabled=true", "--set", "linux.privileged=true",
                            "--set", "enableArcExtension=true"])
        for value in ("linux.providersDir", "secrets-store-csi-driver.install",
                      "windows.enabled", "linux.privileged", "enableArcExtension"):
            self.assertIn(f"NOTE: {value}", notes)


class InstallCommandsTest(unittest.TestCase):
    def test_shell_blocks_are_split_into_commands(self):
        text = ("Text\n```sh\n# comment\nhelm upgrade --install a charts/akv-csi-provider \\\n"
                "  --namespace kube-system  # note\nkubectl apply -k deploy/ && kubectl get pods\n"
                "```\n```yaml\nkubectl apply -k nothing\n```\n1. In a list:\n\n   ```sh\n   kubectl apply -f x.yaml\n   ```\n")
        self.assertEqual(manifests.shell_commands(text), [
            "helm upgrade --install a charts/akv-csi-provider --namespace kube-system",
            "kubectl apply -k deploy/", "kubectl get pods", "kubectl apply -f x.yaml"])

    def test_the_docs_install_both_ways(self):
        kinds = {" ".join(argv[:3]) for _, argv in manifests.install_commands()}
        self.assertIn("helm upgrade --install", kinds)
        self.assertIn("kubectl apply -k", kinds)

    def test_a_driver_command_needs_a_supported_version_and_our_values(self):
        validator = manifests.Validator(SCHEMAS)
        base = ["helm", "upgrade", "--install", "csi", "secrets-store-csi-driver",
                "--repo", "https://example", "--namespace", "kube-system"]
        ok = base + ["--version", "1.6.0", "-f", manifests.DRIVER_VALUES]
        self.assertEqual(manifests.check_helm_command(ok, "t", ROOT, validator), ("driver", 0))
        for bad in (base + ["--version", "1.4.0", "-f", manifests.DRIVER_VALUES],
                    base + ["--version", "1.6.0", "--set", "tokenRequests[0].audience=x"]):
            with self.assertRaises(manifests.ValidationFailure):
                manifests.check_helm_command(bad, "t", ROOT, validator)

    def test_driver_values_schema_is_strict(self):
        validator = manifests.Validator(SCHEMAS)
        (values,) = manifests.load_documents(ROOT / manifests.DRIVER_VALUES)
        manifests.first_error(validator.driver_values, values, "ok")
        for broken in ({**values, "tokenRequest": []}, {**values, "syncSecret": {"enable": True}},
                       {**values, "tokenRequests": []}):
            with self.assertRaises(manifests.ValidationFailure):
                manifests.first_error(validator.driver_values, broken, "broken")


if __name__ == "__main__":
    unittest.main()
