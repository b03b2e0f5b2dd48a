// The shared logic of the real-parts e2e (issue 17): the blog walkthrough
// against a real kube-apiserver and the real Secrets Store CSI Driver, and
// the fast contract check with the driver's own provider client. The
// driver modules under ../tools/driver-v* import it (replace), so each test
// compiles against that driver version's packages. It requires the driver
// at the oldest version we test, and every other module at exactly that
// version's choice, so it never moves a driver module's dependencies.
// It is built only as part of a driver module (no go.sum of its own): vet
// or test it from e2e/tools/driver-v*, e.g. `go vet -trimpath .` there.
module akv-csi-provider/e2e/suite

go 1.24

require (
	github.com/container-storage-interface/spec v1.6.0
	google.golang.org/grpc v1.56.3
	sigs.k8s.io/secrets-store-csi-driver v1.5.6
	sigs.k8s.io/yaml v1.3.0
)

replace monis.app/mlog => ../tools/mlog
