// The real-parts e2e against Secrets Store CSI Driver v1.6.1: this module's
// driver packages and binary (e2e/suite has the logic; make e2e-local runs it).
package tools_test

import (
	"testing"

	"akv-csi-provider/e2e/suite"
)

const driverVersion = "v1.6.1"

func TestContract(t *testing.T) { suite.RunContract(t, driverVersion) }

func TestWalkthrough(t *testing.T) { suite.RunWalkthrough(t, driverVersion) }
