//go:build tools

// Package tools keeps upstream's provider binary in go.sum.
package tools

import _ "github.com/Azure/secrets-store-csi-driver-provider-azure/cmd"
