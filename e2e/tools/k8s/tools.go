//go:build tools

// Package tools keeps the real Kubernetes parts the e2e runs in go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
