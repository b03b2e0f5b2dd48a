package suite

// Where the parts are: the repository root, the Go parts scripts/go-tools.sh
// built (.tools/go/bin), the Rust binaries (target/debug), and a work
// directory per run for sockets, PKI and every component's log.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Env locates one run's parts.
type Env struct {
	Repo    string
	GoBin   string // etcd, kube-apiserver, kubectl, secrets-store-csi-driver-v*
	RustBin string // akv-csi-provider, fake-azure
	Dir     string // this run's work directory
}

// NewEnv finds the repository from the working directory (a driver module
// under e2e/tools) and makes a work directory, removed after a passing run
// unless E2E_KEEP is set; a failing run keeps it and says where.
func NewEnv(t *testing.T, name string) *Env {
	t.Helper()
	repo, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rust := os.Getenv("E2E_RUST_BIN")
	if rust == "" {
		rust = filepath.Join(repo, "target", "debug")
	}
	dir, err := os.MkdirTemp("", "akv-e2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_KEEP") != "" {
			t.Logf("work directory with every component's log kept: %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return &Env{Repo: repo, GoBin: filepath.Join(repo, ".tools", "go", "bin"), RustBin: rust, Dir: dir}
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if Exists(filepath.Join(d, "Cargo.toml")) && Exists(filepath.Join(d, "e2e", "suite")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no repository root above %s", dir)
}

// DumpLogs prints the end of each component's log when the test failed.
func DumpLogs(t *testing.T, procs ...*Process) {
	if !t.Failed() {
		return
	}
	for _, p := range procs {
		if p != nil {
			t.Logf("---- %s log (last 40 lines; full: %s)\n%s", p.Name, p.Log, indent(p.Tail(40)))
		}
	}
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
