package suite

// The API server and its storage on 127.0.0.1: etcd and kube-apiserver with
// our own CA and service-account issuer, and kubectl as the admin
// (client certificate in system:masters) or as any kubeconfig.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Issuer is the service-account issuer of the test cluster (what a kind or
// AKS cluster calls itself inside; the fake's Entra ID trusts it).
const Issuer = "https://kubernetes.default.svc.cluster.local"

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	Dir        string
	PKI        *PKI
	Server     string
	Kubeconfig string // the admin's
	kubectl    string
	etcd, api  *Process
}

// StartCluster starts etcd and kube-apiserver from bin and waits for /readyz.
func StartCluster(dir, bin string) (*Cluster, error) {
	pki, err := MakePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("making the cluster's PKI: %w", err)
	}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c := &Cluster{Dir: dir, PKI: pki, Server: fmt.Sprintf("https://127.0.0.1:%d", ports[2]),
		kubectl: filepath.Join(bin, "kubectl")}
	c.etcd, err = Start(dir, "etcd", filepath.Join(bin, "etcd"), []string{
		"--name", "e2e", "--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e=" + peer, "--unsafe-no-fsync",
	}, nil)
	if err != nil {
		return nil, err
	}
	c.api, err = Start(dir, "kube-apiserver", filepath.Join(bin, "kube-apiserver"), []string{
		"--etcd-servers", client,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(ports[2]),
		"--tls-cert-file", pki.ServerCert, "--tls-private-key-file", pki.ServerKey,
		"--client-ca-file", pki.CACert,
		"--service-account-issuer", Issuer,
		"--service-account-key-file", pki.SAPub, "--service-account-signing-key-file", pki.SAKey,
		"--api-audiences", Issuer + ",api://AzureADTokenExchange",
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.96.0.0/24",
		// A 127.0.0.1 advertise address is refused by the endpoint reconciler.
		"--endpoint-reconciler-type", "none",
		// No controller-manager makes the default service accounts.
		"--disable-admission-plugins", "ServiceAccount",
		"--enable-priority-and-fairness=false", "--profiling=false",
	}, nil)
	if err != nil {
		c.Stop()
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := c.WriteKubeconfig(c.Kubeconfig, fmt.Sprintf(
		"    client-certificate: %s\n    client-key: %s\n", pki.AdminCert, pki.AdminKey)); err != nil {
		c.Stop()
		return nil, err
	}
	err = WaitFor("kube-apiserver /readyz", 90*time.Second, func() bool {
		out, err := c.Kubectl("get", "--raw", "/readyz")
		return err == nil && strings.TrimSpace(out) == "ok"
	}, c.etcd, c.api)
	if err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// WriteKubeconfig writes a kubeconfig for this cluster with the given
// user lines (indented four spaces).
func (c *Cluster) WriteKubeconfig(path, user string) error {
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: e2e
  user:
%scontexts:
- name: e2e
  context:
    cluster: e2e
    user: e2e
current-context: e2e
`, c.Server, c.PKI.CACert, user)
	return os.WriteFile(path, []byte(text), 0o600)
}

// Processes are etcd and kube-apiserver.
func (c *Cluster) Processes() []*Process { return []*Process{c.etcd, c.api} }

// Stop stops the API server, then etcd (the other order hangs the API server).
func (c *Cluster) Stop() {
	if c.api != nil {
		c.api.Stop()
	}
	if c.etcd != nil {
		c.etcd.Stop()
	}
}

// Kubectl runs kubectl as the admin and returns its stdout.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	return c.KubectlIn("", args...)
}

// KubectlIn runs kubectl as the admin with stdin.
func (c *Cluster) KubectlIn(stdin string, args ...string) (string, error) {
	cmd := exec.Command(c.kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(redactArgs(args), " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// redactArgs keeps file contents and tokens out of error messages.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 200 {
			a = a[:40] + "…"
		}
		out[i] = a
	}
	return out
}
