//go:build tools

// Package tools keeps the driver binary's packages in go.sum.
package tools

import _ "sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver"
