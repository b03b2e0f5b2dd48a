package suite

// The fast check of the driver–provider contract (issue 17 item 4): the
// driver's own provider client (pkg/secrets-store: the socket lookup, dial
// options and MountContent) and file writer (pkg/util/fileutil, called by
// MountContent) against our provider and the fake. No Kubernetes: the
// service-account token comes from the fake's issuer. Seconds, for fast
// feedback while developing; the walkthrough covers the rest.

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	"sigs.k8s.io/yaml"
)

const contractIssuer = "https://oidc.contract.test/issuer"

// RunContract mounts, rewrites and rotates the blog's secret through the
// driver's client packages of the driver module the test is compiled in.
func RunContract(t *testing.T, version string) {
	env := NewEnv(t, "contract-"+version)
	fake, err := StartFake(env.Dir, env.RustBin, "--blog-walkthrough", "--issuer", contractIssuer)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Stop()
	providers := filepath.Join(env.Dir, "providers")
	provider, err := StartProvider(env.Dir, env.RustBin, providers, fake)
	if err != nil {
		t.Fatal(err)
	}
	defer provider.Stop()
	t.Cleanup(func() { DumpLogs(t, fake.Process, provider.Process) })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	builder := secretsstore.NewPluginClientBuilder([]string{providers})
	defer builder.Cleanup()
	client, err := builder.Get(ctx, "azure")
	if err != nil {
		t.Fatalf("the driver's client builder finds no azure provider in %s: %v", providers, err)
	}
	runtime, err := secretsstore.Version(ctx, client)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	t.Logf("driver %s's provider client: provider runtime %q", version, runtime)

	token := mintToken(t, fake, "kv-access-account")
	secrets := []string{token, BlogSecretValue}
	attrs := blogAttributes(t, env.Repo, "kv-access-account", token)
	target := filepath.Join(env.Dir, "target")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	permission := "420" // what the driver sends: json.Marshal(os.FileMode(0644))

	versions, code, err := secretsstore.MountContent(ctx, client, attrs, "{}", target, permission, nil)
	if err != nil {
		t.Fatalf("MountContent: %v (code %q)", err, code)
	}
	v1 := expectVersions(t, versions)
	expectWritten(t, target, BlogSecretValue)

	rotated := "Blog-P@ssw0rd-contract-" + time.Now().Format("150405.000000000")
	secrets = append(secrets, rotated)
	v2, err := fake.SetSecret(BlogVault, BlogSecret, rotated)
	if err != nil {
		t.Fatal(err)
	}
	versions, code, err = secretsstore.MountContent(ctx, client, attrs, "{}", target, permission, versions)
	if err != nil {
		t.Fatalf("MountContent after rotation: %v (code %q)", err, code)
	}
	if got := expectVersions(t, versions); got != v2 || got == v1 {
		t.Fatalf("after rotation the version is %q, want the fake's new %q (was %q)", got, v2, v1)
	}
	expectWritten(t, target, rotated)
	t.Logf("rotated: %s %s -> %s, file rewritten by the driver's atomic writer", objectID, v1, v2)

	wrong := mintToken(t, fake, "default")
	secrets = append(secrets, wrong)
	_, code, err = secretsstore.MountContent(ctx, client, blogAttributes(t, env.Repo, "default", wrong), "{}", target, permission, versions)
	if err == nil || !strings.Contains(err.Error(), "AADSTS70021") {
		t.Fatalf("MountContent as blog-post/default: err %v (code %q); want AADSTS70021", err, code)
	}
	expectWritten(t, target, rotated) // a failed mount leaves the last good files
	t.Logf("unfederated account: %v (code %q); files untouched", err, code)

	found := provider.ReencodedAuthorities()
	t.Logf("provider-rewritten :authority from driver %s's client: %v", version, found)
	if strings.HasPrefix(version, "v1.5.") != (len(found) > 0) {
		t.Fatalf("driver %s: rewritten authorities %v; want the socket path from v1.5.x only", version, found)
	}
	if ended, err := provider.Exited(); ended {
		t.Fatalf("the provider exited: %v", err)
	}
	builder.Cleanup()
	provider.Stop()
	fake.Stop()
	if leaks := FindLeaks(secrets, provider.Process, fake.Process); len(leaks) > 0 {
		t.Fatalf("tokens or secret values in logs:\n%s", strings.Join(leaks, "\n"))
	}
}

// mintToken has the fake's issuer sign a token for blog-post/<account>.
func mintToken(t *testing.T, fake *Fake, account string) string {
	t.Helper()
	var answer struct{ Token string }
	err := fake.Control(http.MethodPost, "service-account-token", map[string]string{
		"issuer": contractIssuer, "namespace": "blog-post", "service_account": account,
		"audience": "api://AzureADTokenExchange",
	}, &answer)
	if err != nil || answer.Token == "" {
		t.Fatalf("minting a token for blog-post/%s: %v", account, err)
	}
	return answer.Token
}

// blogAttributes is the Mount request's attributes as the driver builds
// them: deploy/examples/secretproviderclass.yaml's parameters plus the
// volume context kubelet sends.
func blogAttributes(t *testing.T, repo, account, token string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repo, "deploy/examples/secretproviderclass.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spc struct {
		Spec struct{ Parameters map[string]string }
	}
	if err := yaml.Unmarshal(text, &spc); err != nil || len(spc.Spec.Parameters) == 0 {
		t.Fatalf("secretproviderclass.yaml: %v", err)
	}
	tokens, err := json.Marshal(map[string]TokenRequest{"api://AzureADTokenExchange": {
		Token: token, ExpirationTimestamp: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	if err != nil {
		t.Fatal(err)
	}
	attrs := spc.Spec.Parameters
	attrs["secretProviderClass"] = blogSPC
	attrs["csi.storage.k8s.io/pod.name"] = blogPod
	attrs["csi.storage.k8s.io/pod.namespace"] = blogNamespace
	attrs["csi.storage.k8s.io/pod.uid"] = "7e7686a1-56c4-4c67-a6fd-4656ac484f0a"
	attrs["csi.storage.k8s.io/serviceAccount.name"] = account
	attrs["csi.storage.k8s.io/ephemeral"] = "true"
	attrs["csi.storage.k8s.io/serviceAccount.tokens"] = string(tokens)
	data, err := json.Marshal(attrs)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func expectVersions(t *testing.T, versions map[string]string) string {
	t.Helper()
	if len(versions) != 1 || versions[objectID] == "" {
		t.Fatalf("object versions %v; want one for %q", versions, objectID)
	}
	return versions[objectID]
}

// expectWritten checks the file through the driver's own reader of a
// target (fileutil.GetMountedFiles) and the atomic writer's ..data link.
func expectWritten(t *testing.T, target, want string) {
	t.Helper()
	files, err := fileutil.GetMountedFiles(target)
	if err != nil {
		t.Fatalf("GetMountedFiles: %v", err)
	}
	path, ok := files[BlogSecret]
	if !ok || len(files) != 1 {
		t.Fatalf("files in the target: %v; want only %s", files, BlogSecret)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("%s holds %q (%v), want %q", BlogSecret, got, err, want)
	}
	if link, err := os.Readlink(filepath.Join(target, "..data")); err != nil || !strings.HasPrefix(link, "..") {
		t.Fatalf("no atomic writer ..data link in the target: %q %v", link, err)
	}
}
