package suite

// The Secrets Store CSI Driver as our install instructions set it up,
// from the driver module's own files (nothing of theirs is copied into our
// repository): its CRDs, its CSIDriver object patched with our
// deploy/examples/csidriver-tokenrequests-patch.yaml, its RBAC
// (deploy/rbac-*.yaml: the static-manifest equivalent of the chart with
// charts/secrets-store-csi-driver-values.yaml), and the binary running with
// a kubeconfig of its own service account — not the admin — so an RBAC
// gap shows up as a failure.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// DriverNamespace and DriverServiceAccount are where the driver's RBAC
// puts its service account.
const (
	DriverNamespace      = "kube-system"
	DriverServiceAccount = "secrets-store-csi-driver"
	NodeID               = "e2e-node"
)

// DriverModuleDir is the directory of sigs.k8s.io/secrets-store-csi-driver
// in the module cache, at the version the current module (the driver
// module whose test runs) requires.
// E2E_DRIVER_MODULE_DIR, when set (scripts/e2e-local.sh sets it), saves
// the lookup.
func DriverModuleDir() (string, error) {
	if dir := os.Getenv("E2E_DRIVER_MODULE_DIR"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/secrets-store-csi-driver").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		return "", fmt.Errorf("go list -m sigs.k8s.io/secrets-store-csi-driver: %v (run the test from its driver module)", err)
	}
	return dir, nil
}

// InstallDriverObjects applies the driver's CRDs, CSIDriver object (with
// our tokenRequests patch) and RBAC from its module directory, and returns
// the RBAC files applied.
func InstallDriverObjects(c *Cluster, repo, moduleDir string) ([]string, error) {
	deploy := filepath.Join(moduleDir, "deploy")
	crds, _ := filepath.Glob(filepath.Join(deploy, "secrets-store.csi.x-k8s.io_*.yaml"))
	rbac, _ := filepath.Glob(filepath.Join(deploy, "rbac-*.yaml"))
	sort.Strings(rbac)
	if len(crds) != 2 || len(rbac) == 0 {
		return nil, fmt.Errorf("%s: expected 2 CRDs and RBAC files, found %v and %v", deploy, crds, rbac)
	}
	files := append(append(append([]string{}, crds...), filepath.Join(deploy, "csidriver.yaml")), rbac...)
	for _, f := range files {
		if _, err := c.Kubectl("apply", "-f", f); err != nil {
			return nil, err
		}
	}
	if _, err := c.Kubectl("patch", "csidriver", DriverName, "--type", "merge",
		"--patch-file", filepath.Join(repo, "deploy/examples/csidriver-tokenrequests-patch.yaml")); err != nil {
		return nil, err
	}
	_, err := c.Kubectl("wait", "--for", "condition=established", "--timeout=60s",
		"crd/secretproviderclasses.secrets-store.csi.x-k8s.io",
		"crd/secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io")
	return rbac, err
}

// DriverKubeconfig writes a kubeconfig holding a token of the driver's own
// service account and returns its path and the token (for the leak check).
func DriverKubeconfig(c *Cluster) (string, string, error) {
	out, err := c.Kubectl("create", "token", DriverServiceAccount, "-n", DriverNamespace, "--duration", "2h")
	if err != nil {
		return "", "", err
	}
	token := strings.TrimSpace(out)
	path := filepath.Join(c.Dir, "driver.kubeconfig")
	return path, token, c.WriteKubeconfig(path, "    token: "+token+"\n")
}

// Driver is the running driver.
type Driver struct {
	*Process
	Socket string
}

// StartDriver runs the driver binary with rotation every rotationPoll.
func StartDriver(dir, bin, kubeconfig, providersDir string, rotationPoll time.Duration) (*Driver, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	socket := filepath.Join(dir, "csi.sock")
	env := []string{"PATH=" + os.Getenv("PATH"), "KUBECONFIG=" + kubeconfig}
	p, err := Start(dir, "secrets-store-csi-driver", bin, []string{
		"--endpoint", "unix://" + socket, "--nodeid", NodeID,
		"--provider-volume", providersDir, "--additional-provider-volume-paths", providersDir,
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--enable-secret-rotation", "--rotation-poll-interval", rotationPoll.String(),
		"-v=2",
	}, env)
	if err != nil {
		return nil, err
	}
	if err := WaitFor("driver socket", 60*time.Second, func() bool { return Exists(socket) }, p); err != nil {
		p.Stop()
		return nil, err
	}
	return &Driver{Process: p, Socket: socket}, nil
}
