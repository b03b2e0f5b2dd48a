package suite

// The blog walkthrough with the real API server and the real driver
// (issue 17 items 2 and 3). The test plays kubelet (and binds pods to the
// node, as the scheduler would, and deletes what garbage collection would);
// everything else is the real thing: kubectl applies deploy/examples/, the
// API server issues the pod's token, the driver calls our provider, writes
// the files, records the SecretProviderClassPodStatus, syncs the Secret and
// rotates.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	blogNamespace = "blog-post"
	blogPod       = "busybox-secrets-store-inline"
	blogSPC       = "azure-kv-password-provider"
	syncedSecret  = "secret-blog-post"
	syncedKey     = "Password"
	objectID      = "secret/" + BlogSecret
	// rotationPoll is the driver's --rotation-poll-interval: v1.5.x's
	// reconciler period, v1.6's minimum age of a mount before a republish
	// acts.
	rotationPoll = 2 * time.Second
)

// walk is one walkthrough run's state.
type walk struct {
	t        *testing.T
	env      *Env
	cluster  *Cluster
	fake     *Fake
	provider *Provider
	driver   *Driver
	kubelet  *Kubelet
	secrets  []string // tokens and values that must not reach a log
}

// RunWalkthrough runs the walkthrough against the driver binary
// .tools/go/bin/secrets-store-csi-driver-<version>.
func RunWalkthrough(t *testing.T, version string) {
	w := &walk{t: t, env: NewEnv(t, "walkthrough-"+version)}
	w.start(version)
	defer w.stop()

	w.step("blog part 1: setup.yaml, secretproviderclass.yaml, pod.yaml; kubelet publishes the volume")
	w.apply("setup.yaml", "secretproviderclass.yaml", "pod.yaml")
	pod := w.schedule(blogPod)
	w.publish(pod)
	w.expectFile(pod, BlogSecretValue)
	w.expectPodStatus(pod, "")
	if _, err := w.cluster.Kubectl("get", "secret", "-n", blogNamespace, syncedSecret); err == nil {
		t.Fatalf("Secret %s exists although secretproviderclass.yaml has no secretObjects", syncedSecret)
	}
	w.unpublish(pod)
	w.deletePod(pod)

	w.step("blog part 2: secretproviderclass-sync.yaml, pod-with-env.yaml; the driver syncs Secret " + syncedSecret)
	w.apply("secretproviderclass-sync.yaml", "pod-with-env.yaml")
	pod = w.schedule(blogPod)
	w.publish(pod)
	w.expectFile(pod, BlogSecretValue)
	w.expectPodStatus(pod, "")
	w.expectSyncedSecret(BlogSecretValue)

	w.step("rotation: a new version of " + BlogSecret + " in the fake")
	rotated := fmt.Sprintf("Blog-P@ssw0rd-rotated-%d", time.Now().UnixNano())
	w.secrets = append(w.secrets, rotated)
	version2, err := w.fake.SetSecret(BlogVault, BlogSecret, rotated)
	if err != nil {
		t.Fatal(err)
	}
	w.expectRotation(pod, rotated)
	w.expectPodStatus(pod, version2)
	w.expectSyncedSecret(rotated)

	w.step("a service account without federation: NodePublishVolume fails with our error, the target stays empty")
	w.expectUnfederatedFails()

	w.step("unpublish")
	w.unpublish(pod)

	w.step("the driver's :authority, restarts, RBAC, logs")
	w.reportAuthority(version)
	w.expectProviderAlive()
	w.expectNoForbidden()
	w.stop()
	if leaks := FindLeaks(w.secrets, w.processes()...); len(leaks) > 0 {
		t.Fatalf("tokens or secret values in component logs:\n%s", strings.Join(leaks, "\n"))
	}
	t.Logf("no token or secret value in the logs of %d components (%d known secrets checked, and JWT shapes)",
		len(w.processes()), len(w.secrets))
}

func (w *walk) step(what string) { w.t.Logf("== %s", what) }

func (w *walk) must(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *walk) processes() []*Process {
	var ps []*Process
	if w.cluster != nil {
		ps = append(ps, w.cluster.Processes()...)
	}
	for _, p := range []*Process{w.fake.proc(), w.provider.proc(), w.driver.proc()} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func (f *Fake) proc() *Process {
	if f == nil {
		return nil
	}
	return f.Process
}

func (p *Provider) proc() *Process {
	if p == nil {
		return nil
	}
	return p.Process
}

func (d *Driver) proc() *Process {
	if d == nil {
		return nil
	}
	return d.Process
}

// start brings up the cluster, the driver's objects, the fake, our
// provider and the driver.
func (w *walk) start(version string) {
	t, env := w.t, w.env
	t.Cleanup(func() { DumpLogs(t, w.processes()...); w.stop() })
	var err error
	begin := time.Now()
	w.cluster, err = StartCluster(env.Dir, env.GoBin)
	w.must(err)
	t.Logf("etcd and kube-apiserver ready at %s in %s", w.cluster.Server, time.Since(begin).Round(time.Millisecond))

	moduleDir, err := DriverModuleDir()
	w.must(err)
	rbac, err := InstallDriverObjects(w.cluster, env.Repo, moduleDir)
	w.must(err)
	t.Logf("driver objects from %s: CRDs, csidriver.yaml + deploy/examples/csidriver-tokenrequests-patch.yaml, RBAC %v",
		moduleDir, baseNames(rbac))

	jwks, err := w.cluster.Kubectl("get", "--raw", "/openid/v1/jwks")
	w.must(err)
	seed, err := WalkthroughSeed(env.Repo, env.Dir, Issuer, jwks)
	w.must(err)
	w.fake, err = StartFake(env.Dir, env.RustBin, "--seed", seed)
	w.must(err)
	w.provider, err = StartProvider(env.Dir, env.RustBin, filepath.Join(env.Dir, "providers"), w.fake)
	w.must(err)

	kubeconfig, token, err := DriverKubeconfig(w.cluster)
	w.must(err)
	w.secrets = append(w.secrets, token, BlogSecretValue)
	bin := filepath.Join(env.GoBin, "secrets-store-csi-driver-"+version)
	w.driver, err = StartDriver(env.Dir, bin, kubeconfig, filepath.Join(env.Dir, "providers"), rotationPoll)
	w.must(err)
	w.kubelet, err = NewKubelet(filepath.Join(env.Dir, "kubelet"), w.driver.Socket, w.cluster)
	w.must(err)
	t.Logf("fake-azure %s, provider pid %d, driver %s as %s:%s, all up in %s",
		w.fake.URL, w.provider.Pid(), version, DriverNamespace, DriverServiceAccount, time.Since(begin).Round(time.Millisecond))
}

func (w *walk) stop() {
	if w.kubelet != nil {
		w.kubelet.Close()
		w.kubelet = nil
	}
	for _, p := range []*Process{w.driver.proc(), w.provider.proc(), w.fake.proc()} {
		if p != nil {
			p.Stop()
		}
	}
	if w.cluster != nil {
		w.cluster.Stop()
	}
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// apply runs kubectl apply -f on files of deploy/examples.
func (w *walk) apply(files ...string) {
	for _, f := range files {
		out, err := w.cluster.Kubectl("apply", "-f", filepath.Join(w.env.Repo, "deploy/examples", f))
		w.must(err)
		w.t.Logf("kubectl apply -f deploy/examples/%s: %s", f, strings.TrimSpace(out))
	}
}

// schedule binds a pod to the driver's node, as the scheduler does
// (the pods/binding subresource), and returns what kubelet then knows.
func (w *walk) schedule(name string) *Pod {
	binding := fmt.Sprintf(`{"apiVersion":"v1","kind":"Binding","metadata":{"name":%q},"target":{"apiVersion":"v1","kind":"Node","name":%q}}`, name, NodeID)
	path := filepath.Join(w.env.Dir, "binding.json")
	w.must(os.WriteFile(path, []byte(binding), 0o600))
	_, err := w.cluster.Kubectl("create", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/binding", blogNamespace, name), "-f", path)
	w.must(err)
	pod, err := w.kubelet.GetPod(blogNamespace, name)
	w.must(err)
	return pod
}

// publish is kubelet's first NodePublishVolume; it must succeed.
func (w *walk) publish(pod *Pod) {
	begin := time.Now()
	tokens, err := w.kubelet.Publish(pod)
	w.secrets = append(w.secrets, tokens...)
	if err != nil {
		w.t.Fatalf("NodePublishVolume for %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	w.t.Logf("NodePublishVolume %s/%s (uid %s, %d token(s) from the TokenRequest API) ok in %s",
		pod.Namespace, pod.Name, pod.UID, len(tokens), time.Since(begin).Round(time.Millisecond))
}

func (w *walk) readFile(pod *Pod) (string, error) {
	data, err := os.ReadFile(filepath.Join(w.kubelet.TargetPath(pod), BlogSecret))
	return string(data), err
}

func (w *walk) expectFile(pod *Pod, want string) {
	got, err := w.readFile(pod)
	w.must(err)
	if got != want {
		w.t.Fatalf("%s holds %q, want %q", BlogSecret, got, want)
	}
	info, err := os.Stat(filepath.Join(w.kubelet.TargetPath(pod), BlogSecret))
	w.must(err)
	w.t.Logf("%s/%s = %q (mode %o), on a tmpfs mount: %v", "<target>", BlogSecret, got, info.Mode().Perm(), w.mounted(w.kubelet.TargetPath(pod)))
	if !w.mounted(w.kubelet.TargetPath(pod)) {
		w.t.Fatalf("the target %s is not a mount point", w.kubelet.TargetPath(pod))
	}
}

// mounted says whether path is a mount point in our mount namespace.
func (w *walk) mounted(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	w.must(err)
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && fields[4] == path {
			return true
		}
	}
	return false
}

type podStatus struct {
	Metadata struct {
		Labels          map[string]string
		OwnerReferences []struct{ Kind, Name, UID string }
	}
	Status struct {
		PodName                 string
		SecretProviderClassName string
		TargetPath              string
		Mounted                 bool
		Objects                 []struct{ ID, Version string }
	}
}

// expectPodStatus checks the SecretProviderClassPodStatus the driver wrote;
// with version set, also that it records exactly that object version.
func (w *walk) expectPodStatus(pod *Pod, version string) {
	name := fmt.Sprintf("%s-%s-%s", pod.Name, pod.Namespace, blogSPC)
	var st podStatus
	var last string
	err := WaitFor("SecretProviderClassPodStatus "+name, 30*time.Second, func() bool {
		out, err := w.cluster.Kubectl("get", "secretproviderclasspodstatus", "-n", pod.Namespace, name, "-o", "json")
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			last = fmt.Sprint(err)
			return false
		}
		last = strings.TrimSpace(out)
		return len(st.Status.Objects) == 1 && (version == "" || st.Status.Objects[0].Version == version)
	}, w.driver.Process)
	if err != nil {
		w.t.Fatalf("%v; last seen: %s", err, last)
	}
	o := st.Status.Objects[0]
	switch {
	case !st.Status.Mounted, st.Status.PodName != pod.Name, st.Status.SecretProviderClassName != blogSPC,
		st.Status.TargetPath != w.kubelet.TargetPath(pod):
		w.t.Fatalf("SecretProviderClassPodStatus %s: %+v", name, st.Status)
	case o.ID != objectID || o.Version == "":
		w.t.Fatalf("SecretProviderClassPodStatus %s records object %q version %q, want id %q and a version", name, o.ID, o.Version, objectID)
	case len(st.Metadata.OwnerReferences) != 1 || st.Metadata.OwnerReferences[0].UID != pod.UID:
		w.t.Fatalf("SecretProviderClassPodStatus %s is not owned by pod uid %s: %+v", name, pod.UID, st.Metadata.OwnerReferences)
	}
	w.t.Logf("SecretProviderClassPodStatus %s: mounted, node label %q, objects [%s @ %s]",
		name, st.Metadata.Labels["internal.secrets-store.csi.k8s.io/node-name"], o.ID, o.Version)
}

// expectSyncedSecret waits for the synced Secret's key to hold want and
// logs the Secret's data.
func (w *walk) expectSyncedSecret(want string) {
	var data map[string]string
	var last string
	err := WaitFor("Secret "+syncedSecret+" key "+syncedKey, 60*time.Second, func() bool {
		out, err := w.cluster.Kubectl("get", "secret", "-n", blogNamespace, syncedSecret, "-o", "jsonpath={.data}")
		if err != nil || json.Unmarshal([]byte(out), &data) != nil {
			last = fmt.Sprint(err)
			return false
		}
		got, _ := base64.StdEncoding.DecodeString(data[syncedKey])
		last = fmt.Sprintf("keys %v, %s=%q", keys(data), syncedKey, got)
		return string(got) == want
	}, w.driver.Process)
	if err != nil {
		w.t.Fatalf("%v; last seen: %s", err, last)
	}
	w.t.Logf("synced Secret %s/%s data: %s", blogNamespace, syncedSecret, last)
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// expectRotation waits for the file to rotate. With requiresRepublish
// (driver v1.6) kubelet republishes periodically, so the test does, every
// second; without it (v1.5) the driver's own reconciler must do it.
func (w *walk) expectRotation(pod *Pod, want string) {
	spec, err := w.kubelet.CSIDriver()
	w.must(err)
	begin := time.Now()
	republishes := 0
	err = WaitFor("rotation of "+BlogSecret, 90*time.Second, func() bool {
		if got, _ := w.readFile(pod); got == want {
			return true
		}
		if spec.RequiresRepublish && time.Since(begin) > time.Duration(republishes)*time.Second {
			republishes++
			tokens, err := w.kubelet.Publish(pod)
			w.secrets = append(w.secrets, tokens...)
			if err != nil {
				w.t.Logf("republish %d: %v", republishes, err)
			}
		}
		return false
	}, w.driver.Process, w.provider.Process)
	w.must(err)
	how := "by the driver's rotation reconciler (no kubelet republish: requiresRepublish is false)"
	if spec.RequiresRepublish {
		how = fmt.Sprintf("after %d kubelet republish(es) (requiresRepublish: true)", republishes)
	}
	w.t.Logf("file rotated to the new value in %s, %s", time.Since(begin).Round(time.Millisecond), how)
}

// expectUnfederatedFails publishes a pod like pod.yaml running as a
// service account no federated credential names.
func (w *walk) expectUnfederatedFails() {
	const account, name = "no-federation", "busybox-no-federation"
	_, err := w.cluster.Kubectl("create", "serviceaccount", "-n", blogNamespace, account)
	w.must(err)
	out, err := w.cluster.Kubectl("create", "--dry-run=client", "-o", "json", "-f", filepath.Join(w.env.Repo, "deploy/examples/pod.yaml"))
	w.must(err)
	var obj map[string]any
	w.must(json.Unmarshal([]byte(out), &obj))
	obj["metadata"].(map[string]any)["name"] = name
	obj["spec"].(map[string]any)["serviceAccountName"] = account
	manifest, err := json.Marshal(obj)
	w.must(err)
	_, err = w.cluster.KubectlIn(string(manifest), "apply", "-f", "-")
	w.must(err)
	pod := w.schedule(name)
	tokens, err := w.kubelet.Publish(pod)
	w.secrets = append(w.secrets, tokens...)
	if err == nil {
		w.t.Fatalf("NodePublishVolume for %s as %s succeeded; want AADSTS70021", name, account)
	}
	msg := err.Error()
	w.t.Logf("NodePublishVolume as %s/%s failed as expected: %s", blogNamespace, account, msg)
	for _, want := range []string{"failed to mount objects, error: ", "AADSTS70021"} {
		if !strings.Contains(msg, want) {
			w.t.Fatalf("the error does not contain %q", want)
		}
	}
	target := w.kubelet.TargetPath(pod)
	entries, _ := os.ReadDir(target)
	if len(entries) > 0 || w.mounted(target) {
		w.t.Fatalf("the failed mount left %d entries in %s (mounted: %v)", len(entries), target, w.mounted(target))
	}
}

func (w *walk) unpublish(pod *Pod) {
	target := w.kubelet.TargetPath(pod)
	w.must(w.kubelet.Unpublish(pod))
	if w.mounted(target) || Exists(filepath.Join(target, BlogSecret)) {
		w.t.Fatalf("NodeUnpublishVolume left %s mounted (%v) or with files", target, w.mounted(target))
	}
	w.t.Logf("NodeUnpublishVolume %s/%s ok: target unmounted, no files", pod.Namespace, pod.Name)
}

// deletePod deletes the pod and, playing garbage collection (no
// controller-manager here), its SecretProviderClassPodStatus.
func (w *walk) deletePod(pod *Pod) {
	_, err := w.cluster.Kubectl("delete", "pod", "-n", pod.Namespace, pod.Name, "--grace-period=0", "--force")
	w.must(err)
	_, err = w.cluster.Kubectl("delete", "secretproviderclasspodstatus", "-n", pod.Namespace,
		fmt.Sprintf("%s-%s-%s", pod.Name, pod.Namespace, blogSPC))
	w.must(err)
}

// reportAuthority logs the :authority the driver's provider client sent
// when our provider had to rewrite it (drivers up to v1.5 send the socket
// path); v1.6 sends "localhost" and needs no rewrite.
func (w *walk) reportAuthority(version string) {
	found := w.provider.ReencodedAuthorities()
	if len(found) == 0 {
		w.t.Logf(":authority: the %s driver sent one h2 accepts (no rewrite logged by the provider)", version)
	} else {
		w.t.Logf(":authority the %s driver sent (rewritten to localhost by the provider): %s", version, strings.Join(found, ", "))
	}
	if strings.HasPrefix(version, "v1.5.") != (len(found) > 0) {
		w.t.Fatalf("driver %s: rewritten authorities %v; want the socket path from v1.5.x only", version, found)
	}
}

func (w *walk) expectProviderAlive() {
	if ended, err := w.provider.Exited(); ended {
		w.t.Fatalf("our provider (pid %d) exited during the walkthrough: %v", w.provider.Pid(), err)
	}
	w.t.Logf("provider restarts: 0 (pid %d alive since the start)", w.provider.Pid())
}

// expectNoForbidden fails when the driver, running as its own service
// account, was refused anything by RBAC.
func (w *walk) expectNoForbidden() {
	data, err := os.ReadFile(w.driver.Log)
	w.must(err)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "forbidden") {
			w.t.Fatalf("the driver was refused by RBAC: %s", line)
		}
	}
	w.t.Logf("driver RBAC: nothing forbidden for %s:%s", DriverNamespace, DriverServiceAccount)
}
