package suite

// The Azure side: the bundled fake (Entra ID + Key Vault behind one HTTPS
// proxy, target/debug/fake-azure) and our provider (target/debug/
// akv-csi-provider) on <providers>/azure.sock, pointed at the fake with
// HTTPS_PROXY and SSL_CERT_FILE as in make demo.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The blog walkthrough's Azure names (deploy/examples, deploy/e2e/seed.json).
const (
	BlogVault       = "kv-blogpost-jx01"
	BlogSecret      = "MySecretPassword"
	BlogSecretValue = "Blog-P@ssw0rd-from-fake-kv"
)

// Fake is the running fake-azure.
type Fake struct {
	*Process
	URL    string // proxy and control API: http://127.0.0.1:PORT
	CAFile string
}

// StartFake starts fake-azure with the given seed arguments
// (--seed FILE, or --blog-walkthrough --issuer URL).
func StartFake(dir, bin string, seedArgs ...string) (*Fake, error) {
	ca := filepath.Join(dir, "fake-ca.pem")
	ready := filepath.Join(dir, "fake-url")
	args := append(append([]string{}, seedArgs...),
		"--listen", "127.0.0.1:0", "--ca-out", ca, "--ready-file", ready)
	p, err := Start(dir, "fake-azure", filepath.Join(bin, "fake-azure"), args, nil)
	if err != nil {
		return nil, err
	}
	if err := WaitFor("fake-azure ready file", 30*time.Second, func() bool { return Exists(ready) }, p); err != nil {
		p.Stop()
		return nil, err
	}
	url, err := os.ReadFile(ready)
	if err != nil {
		p.Stop()
		return nil, err
	}
	return &Fake{Process: p, URL: strings.TrimSpace(string(url)), CAFile: ca}, nil
}

// WalkthroughSeed writes deploy/e2e/seed.json (the kind e2e's seed) with
// the cluster's issuer and JWKS filled in, so the fake's Entra ID verifies
// the real API server's tokens with the API server's own keys.
func WalkthroughSeed(repo, dir, issuer, jwks string) (string, error) {
	text, err := os.ReadFile(filepath.Join(repo, "deploy/e2e/seed.json"))
	if err != nil {
		return "", err
	}
	var probe struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal([]byte(jwks), &probe); err != nil || len(probe.Keys) == 0 {
		return "", fmt.Errorf("the API server's JWKS has no keys (%v): %.200s", err, jwks)
	}
	seed := strings.ReplaceAll(string(text), "__ISSUER__", issuer)
	seed = strings.Replace(seed, `"__JWKS__"`, strings.TrimSpace(jwks), 1)
	path := filepath.Join(dir, "seed.json")
	return path, os.WriteFile(path, []byte(seed), 0o600)
}

// Control calls the fake's control API (/_fake/...) and decodes the answer.
func (f *Fake) Control(method, path string, body any, answer any) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, f.URL+"/_fake/"+path, reader)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("fake-azure %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fake-azure %s %s: %s: %s", method, path, resp.Status, data)
	}
	if answer == nil {
		return nil
	}
	return json.Unmarshal(data, answer)
}

// SetSecret makes value the current version of a secret and returns the
// version id.
func (f *Fake) SetSecret(vault, name, value string) (string, error) {
	var answer struct {
		Version string `json:"version"`
	}
	err := f.Control(http.MethodPut, "vaults/"+vault+"/secrets/"+name, map[string]string{"value": value}, &answer)
	if err == nil && answer.Version == "" {
		err = fmt.Errorf("fake-azure gave no version for %s/%s", vault, name)
	}
	return answer.Version, err
}

// Provider is our running provider.
type Provider struct {
	*Process
	Socket string
}

// StartProvider starts target/debug/akv-csi-provider on <providersDir>/azure.sock
// with the fake as its HTTPS proxy, at -v=5 so its log shows the most it
// ever logs (the leak check reads it).
func StartProvider(dir, bin, providersDir string, fake *Fake) (*Provider, error) {
	if err := os.MkdirAll(providersDir, 0o755); err != nil {
		return nil, err
	}
	socket := filepath.Join(providersDir, "azure.sock")
	env := []string{"PATH=" + os.Getenv("PATH"), "HTTPS_PROXY=" + fake.URL, "SSL_CERT_FILE=" + fake.CAFile}
	p, err := Start(dir, "akv-csi-provider", filepath.Join(bin, "akv-csi-provider"), []string{
		"--endpoint", "unix://" + socket,
		"--admin-bind-address=127.0.0.1", "--healthz-port=0", "--prometheus-port=0", "-v=5",
	}, env)
	if err != nil {
		return nil, err
	}
	if err := WaitFor("akv-csi-provider socket", 30*time.Second, func() bool { return Exists(socket) }, p); err != nil {
		p.Stop()
		return nil, err
	}
	return &Provider{Process: p, Socket: socket}, nil
}

// ReencodedAuthorities are the :authority values the provider logged as
// rewritten (src/authority.rs logs each connection's first one at -v=5):
// what an old driver sends instead of a host name.
func (p *Provider) ReencodedAuthorities() []string {
	data, _ := os.ReadFile(p.Log)
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "re-encoding this connection's requests") {
			continue
		}
		if i := strings.Index(line, "authority="); i >= 0 {
			found = append(found, strings.Fields(line[i+len("authority="):])[0])
		}
	}
	return found
}
