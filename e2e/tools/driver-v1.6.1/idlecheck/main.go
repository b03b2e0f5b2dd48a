// idlecheck drives a provider's socket with the Secrets Store CSI Driver's
// own provider client (this module's driver, v1.6.1, and its grpc-go): one
// client for the whole run, as the driver keeps one per provider, calling
// Version at intervals around the provider's --connection-idle-timeout, so
// the provider closes the idle connection (GOAWAY) between most calls and
// some calls race the close. Every call must succeed: the close is
// invisible to the driver. Prints one line per call and a summary; exits 1
// on any failed call.
//
//	go build -o /tmp/idlecheck ./idlecheck   (in e2e/tools/driver-v1.6.1)
//	GRPC_GO_LOG_SEVERITY_LEVEL=info GRPC_GO_LOG_VERBOSITY_LEVEL=2 \
//	  /tmp/idlecheck -providers-dir DIR -idle 1s -calls 40
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
)

func main() {
	dir := flag.String("providers-dir", "", "directory holding azure.sock")
	idle := flag.Duration("idle", time.Second, "the provider's --connection-idle-timeout")
	calls := flag.Int("calls", 40, "Version calls to make")
	flag.Parse()

	builder := secretsstore.NewPluginClientBuilder([]string{*dir})
	client, err := builder.Get(context.Background(), "azure")
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	failed := 0
	for i := 0; i < *calls; i++ {
		// From 0.5x to 1.5x the idle timeout, and a few exactly at it.
		wait := *idle/2 + time.Duration(i%11)**idle/10
		time.Sleep(wait)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		started := time.Now()
		version, err := secretsstore.Version(ctx, client)
		cancel()
		took := time.Since(started)
		if err != nil {
			failed++
			fmt.Printf("call %d after %v idle: FAILED in %v: %v\n", i, wait, took, err)
			continue
		}
		fmt.Printf("call %d after %v idle: %s in %v\n", i, wait, version, took)
	}
	fmt.Printf("%d calls, %d failed\n", *calls, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
