// Package suite is the shared logic of the real-parts e2e (issue 17). Test
// files in the driver modules e2e/tools/driver-v1.6.1 and
// e2e/tools/driver-v1.5.6 call it, so the same checks run against each
// driver version's own packages and binary:
//
//   - RunContract: the driver's provider client (pkg/secrets-store
//     MountContent) and file writer (pkg/util/fileutil) against our
//     provider and the Azure fake; no Kubernetes, seconds.
//   - RunWalkthrough: the blog walkthrough with etcd, kube-apiserver,
//     kubectl and the driver binary built from pinned modules
//     (scripts/go-tools.sh), our provider and the fake; the test plays
//     kubelet (and the scheduler's binding) and nothing else.
//
// Both need the binaries in place (make e2e-local builds them) and run
// inside scripts/netns-run; the walkthrough also inside a private mount
// namespace (unshare -m --propagation private), as root, because the driver
// mounts tmpfs. A missing binary or a part that does not start is a test
// failure naming it, never a skip.
package suite
