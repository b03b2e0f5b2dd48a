# akv-csi-provider — the two set-up commands are `make demo` and `make test`.
CARGO ?= cargo
CARGO_FLAGS ?= --locked

.PHONY: all build release test demo bench lint fmt clippy clean image image-load e2e-kind e2e-local fuzz soak

# Container images (`make image`; needs Docker with buildx).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IMAGE ?= akv-csi-provider:$(VERSION)
FAKE_IMAGE ?= fake-azure:e2e
PLATFORMS ?= linux/amd64,linux/arm64
# `make image PUSH=1 IMAGE=registry/akv-csi-provider:tag` pushes both
# platforms; without PUSH the result is an OCI archive in target/image/.
IMAGE_OUTPUT = $(if $(PUSH),--push,--output type=oci,dest=target/image/akv-csi-provider-$(VERSION).oci.tar)

all: build

build:
	$(CARGO) build $(CARGO_FLAGS) --workspace --all-targets

release:
	$(CARGO) build $(CARGO_FLAGS) --release --bin akv-csi-provider
	$(CARGO) build $(CARGO_FLAGS) --release -p fake-azure --bin fake-azure

# Fetch and build with the network (our crates, upstream's provider for the
# differential test), then run every test inside a loopback-only network
# namespace (scripts/netns-run).
test:
	$(CARGO) fmt --all -- --check
	scripts/check-layers.sh
	scripts/check-deploy.sh
	$(CARGO) build $(CARGO_FLAGS) --workspace --all-targets
	$(CARGO) test $(CARGO_FLAGS) --workspace --no-run
	scripts/go-tools.sh azure-provider-v1.8.2
	scripts/netns-run $(CARGO) test $(CARGO_FLAGS) --offline --workspace
	$(MAKE) e2e-local

# The parts the real-parts e2e runs, built from the Go modules pinned under
# e2e/tools (cached in Go's build and module caches between runs).
E2E_GO_PARTS = kube-apiserver kubectl etcd secrets-store-csi-driver-v1.6.1 secrets-store-csi-driver-v1.5.6

# The blog walkthrough with a real kube-apiserver and the real Secrets Store
# CSI Driver v1.6.1 and v1.5.6 (no containers), plus the fast contract check
# with the driver's own client packages; see scripts/e2e-local.sh.
# The Rust binaries come from the same build as `make build`/`make test` (a
# narrower cargo build would unify features differently and rebuild).
e2e-local: build
	scripts/go-tools.sh $(E2E_GO_PARTS)
	scripts/e2e-local.sh

# The blog walkthrough on the bundled Azure fake; files land in ./demo.
demo:
	$(CARGO) build $(CARGO_FLAGS) --bin akv-csi-provider --example driver
	$(CARGO) build $(CARGO_FLAGS) -p fake-azure --bin fake-azure
	scripts/demo.sh

# Performance scenarios (issues 5, 15, 18) on the bundled fake, ours next to
# upstream's real provider (built from its pinned Go module; a failed build
# stops here with go's reason), inside the loopback-only network namespace;
# writes docs/benchmarks.md.
bench:
	scripts/go-tools.sh azure-provider-v1.8.2
	$(CARGO) build $(CARGO_FLAGS) --release --bin akv-csi-provider --example bench
	scripts/netns-run target/release/examples/bench --upstream .tools/go/bin/azure-provider-v1.8.2

# Every fuzz target for FUZZ_SECONDS (default 20) each, from the committed
# corpus (scripts/fuzz.sh; installs cargo-fuzz when missing).
fuzz:
	scripts/fuzz.sh

# 10,000 mounts (good, bad, throttled) against the fake, sampling the
# provider's RSS and open fds; writes docs/soak.md (scripts/soak.sh).
soak:
	$(CARGO) build $(CARGO_FLAGS) --release --bin akv-csi-provider --example soak
	target/release/examples/soak

# The provider's image for linux/amd64 and linux/arm64, cross-compiled on
# this machine's platform (see the Dockerfile), with buildx.
image:
	mkdir -p target/image
	docker buildx build --platform $(PLATFORMS) $(IMAGE_OUTPUT) -t $(IMAGE) .

# The provider's and the Azure fake's images for this machine's platform,
# loaded into Docker (what `make e2e-kind` builds too).
image-load:
	docker buildx build --load -t $(IMAGE) .
	docker buildx build --load --target fake-azure -t $(FAKE_IMAGE) .

# The blog walkthrough and the driver's azure.bats scenarios in a kind
# cluster, against fake-azure running in the cluster (needs Docker, kind,
# kubectl, helm; see deploy/e2e/run.sh for settings).
e2e-kind:
	deploy/e2e/run.sh

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf demo
