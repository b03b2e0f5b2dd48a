#!/usr/bin/env python3
"""Tests of scripts/check_layers.py on fixture trees: a clean tree passes;
a deliberate cycle, a deliberate upward import, I/O in the core, a runtime
dependency of the core and a module missing from the layer table each fail,
naming the file and line.

Run: python3 scripts/check_layers_test.py (scripts/check-layers.sh does).
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_layers  # noqa: E402

CORE_MANIFEST = """\
[package]
name = "akv-core"

[dependencies]
serde = "1"

[dev-dependencies]
proptest = "1"
"""

# A small provider crate that keeps every rule: edge → mount → I/O →
# transport → bottom, core modules from anywhere.
CLEAN = {
    "src/lib.rs": "pub use akv_core::{params, render};\npub mod server;\n",
    "src/main.rs": "use akv_csi_provider::{app, cli::Args};\n",
    "src/app.rs": "use crate::server::Provider;\nuse crate::params;\n",
    "src/cli.rs": "use crate::mount::DEFAULT;\n",
    "src/server.rs": "use crate::{mount::{self, Mount}, metrics};\n",
    "src/mount.rs": "use crate::auth::Auth;\nuse crate::reads;\n// crate::server::x in a comment is no import\n",
    "src/reads.rs": "use crate::keyvault::KeyVault;\n",
    "src/keyvault.rs": "use crate::http::Http;\nuse crate::auth::AccessToken;\n",
    "src/auth.rs": "mod cache;\nuse crate::http::{self, Http};\n",
    "src/auth/cache.rs": "use super::AccessToken;\nuse crate::shared::SingleFlight;\n",
    "src/http.rs": "mod retrying;\nuse crate::metrics::Metrics;\n",
    "src/http/retrying.rs": "use crate::budget::Deadline;\nuse crate::retry::Policy;\n",
    "src/metrics.rs": "use crate::params::IdentityKind;\n",
    "src/budget.rs": "",
    "src/shared.rs": "",
    "crates/core/Cargo.toml": CORE_MANIFEST,
    "crates/core/src/lib.rs": "//! no tokio:: here, only in comments\npub mod params;\n",
    "crates/core/src/params.rs": "use std::collections::BTreeMap;\n",
}


def tree(changes: dict[str, str]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="check-layers-"))
    for path, text in {**CLEAN, **changes}.items():
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text))
    return root


def run_main(root: Path) -> int:
    with contextlib.redirect_stderr(io.StringIO()):
        return check_layers.main(["check_layers.py", str(root)])


def errors(changes: dict[str, str]) -> list[str]:
    root = tree(changes)
    return check_layers.check_core(root) + check_layers.check_provider(root)


class CheckLayers(unittest.TestCase):
    def test_clean_tree_passes(self) -> None:
        self.assertEqual(errors({}), [])
        root = tree({})
        self.assertEqual(run_main(root), 0)

    def test_a_cycle_fails(self) -> None:
        # reads and auth share a layer: the cycle is the only violation.
        found = errors({"src/auth.rs": "mod cache;\nuse crate::reads::Reads;\n"})
        self.assertEqual(len(found), 1, found)
        self.assertIn("import cycle between", found[0])
        self.assertIn("auth → reads (src/auth.rs:2)", found[0])
        self.assertIn("reads → keyvault", found[0])
        root = tree({"src/auth.rs": "use crate::reads::Reads;\n"})
        self.assertEqual(run_main(root), 1)

    def test_a_cycle_through_a_group_import_fails(self) -> None:
        found = errors({"src/auth/cache.rs": "use crate::{\n    shared,\n    keyvault::Bundle,\n};\n"})
        self.assertTrue(any("import cycle between auth, keyvault" in e for e in found), found)

    def test_an_upward_import_fails(self) -> None:
        found = errors({"src/http/retrying.rs": "const X: u32 = crate::mount::DEFAULT_MOUNT_TIMEOUT;\n"})
        self.assertIn(
            "upward import: http (transport) → mount (orchestration) at src/http/retrying.rs:1",
            found,
        )

    def test_the_metrics_to_auth_cycle_fails(self) -> None:
        found = errors({"src/metrics.rs": "impl From<crate::auth::Mode> for TokenMode {}\n"})
        self.assertTrue(any(e.startswith("import cycle between auth, http, metrics") for e in found), found)
        self.assertTrue(any("upward import: metrics (bottom) → auth (I/O)" in e for e in found), found)

    def test_io_in_the_core_fails(self) -> None:
        found = errors({"crates/core/src/params.rs": "use std::fs;\nfn f() { tokio::spawn(x); }\n"})
        self.assertEqual(len(found), 2, found)
        self.assertTrue(all("crates/core/src/params.rs" in e for e in found), found)

    def test_a_runtime_dependency_of_the_core_fails(self) -> None:
        manifest = CORE_MANIFEST.replace('serde = "1"', 'serde = "1"\ntokio = { version = "1" }')
        found = errors({"crates/core/Cargo.toml": manifest})
        self.assertEqual(
            found,
            ["pure core depends on a runtime/network crate: crates/core/Cargo.toml [dependencies] tokio"],
        )

    def test_a_module_without_a_layer_fails(self) -> None:
        found = errors({"src/gadget.rs": ""})
        self.assertEqual(len(found), 1, found)
        self.assertIn("module `gadget` has no layer", found[0])


if __name__ == "__main__":
    unittest.main()
