# akv-csi-provider — the two set-up commands are `make demo` and `make test`.
CARGO ?= cargo
CARGO_FLAGS ?= --locked

.PHONY: all build release test demo bench lint fmt clippy clean

all: build

build:
	$(CARGO) build $(CARGO_FLAGS) --workspace --all-targets

release:
	$(CARGO) build $(CARGO_FLAGS) --release --bin akv-csi-provider
	$(CARGO) build $(CARGO_FLAGS) --release -p fake-azure --bin fake-azure

# Fetch and build with the network, then run every test inside a
# loopback-only network namespace (scripts/netns-run).
test:
	$(CARGO) fmt --all -- --check
	scripts/check-layers.sh
	$(CARGO) build $(CARGO_FLAGS) --workspace --all-targets
	$(CARGO) test $(CARGO_FLAGS) --workspace --no-run
	scripts/netns-run $(CARGO) test $(CARGO_FLAGS) --offline --workspace

# The blog walkthrough on the bundled Azure fake; files land in ./demo.
demo:
	$(CARGO) build $(CARGO_FLAGS) --bin akv-csi-provider --example driver
	$(CARGO) build $(CARGO_FLAGS) -p fake-azure --bin fake-azure
	scripts/demo.sh

# Performance scenarios of issue 5 on the bundled fake; writes docs/benchmarks.md.
bench:
	$(CARGO) build $(CARGO_FLAGS) --release --bin akv-csi-provider --example bench
	target/release/examples/bench

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf demo
