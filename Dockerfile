# syntax=docker/dockerfile:1
#
# Images of akv-csi-provider (the default, last target) and of the Azure
# fake the kind e2e runs in the cluster (target fake-azure), for linux/amd64
# and linux/arm64:
#
#   make image          # both platforms with buildx (docker buildx build --platform ...)
#   make image-load     # this machine's platform only, into `docker images`
#   docker build -t akv-csi-provider:0.1.0 .                 # same, plain BuildKit
#   docker build --target fake-azure -t fake-azure:e2e .
#
# Cross-compiled, never emulated: the build stages run on the build
# machine's platform (--platform=$BUILDPLATFORM) and cargo compiles for
# $TARGETARCH with Debian's cross gcc as C compiler and linker (aws-lc-sys
# has C code); only the runtime stage is of the target platform, and it runs
# nothing at build time. The builder is pinned to the Debian release the
# runtime is built from (bookworm), so the binaries' glibc matches. The
# runtime is distroless: no shell, no package manager, CA bundle and glibc
# only; it defaults to the unprivileged user 65532. Distroless publishes no
# version tags; the release workflow pins what it pushes by digest and
# signs it.

FROM --platform=$BUILDPLATFORM rust:1.95.0-bookworm AS toolchain
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TARGETARCH
# The cross compiler of the target architecture (none when it is the build
# machine's own). Debian's bookworm packages: their versions move only with
# security updates, so they are not pinned here.
# hadolint ignore=DL3008
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; gnu=x86_64-linux-gnu; pkg=gcc-x86-64-linux-gnu ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; pkg=gcc-aarch64-linux-gnu ;; \
      *) echo "unsupported TARGETARCH=$TARGETARCH (amd64, arm64)" >&2; exit 1 ;; \
    esac; \
    if [ "$(dpkg --print-architecture)" != "$TARGETARCH" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "$pkg" "libc6-dev-$TARGETARCH-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$triple"; \
    echo "$triple" >/rust-target; \
    echo "$gnu" >/gnu-target

FROM toolchain AS source
WORKDIR /src
# The whole workspace: cargo reads every member's manifest and targets.
COPY . .

# Each build stage compiles one binary for the target, with the cross gcc
# as linker and as C compiler (cc crate); on the target's own platform that
# gcc is the native one. Build dates come from SOURCE_DATE_EPOCH when given
# (reproducible builds).
FROM source AS build-provider
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG SOURCE_DATE_EPOCH
ARG TARGETARCH
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=target-$TARGETARCH \
    set -eu; \
    triple=$(cat /rust-target); gnu=$(cat /gnu-target); \
    env_triple=$(echo "$triple" | tr 'a-z-' 'A-Z_'); \
    export "CARGO_TARGET_${env_triple}_LINKER=$gnu-gcc" "CC_$(echo "$triple" | tr - _)=$gnu-gcc"; \
    cargo build --locked --release --target "$triple" --bin akv-csi-provider; \
    cp "target/$triple/release/akv-csi-provider" /akv-csi-provider

FROM source AS build-fake
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG SOURCE_DATE_EPOCH
ARG TARGETARCH
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=target-$TARGETARCH \
    set -eu; \
    triple=$(cat /rust-target); gnu=$(cat /gnu-target); \
    env_triple=$(echo "$triple" | tr 'a-z-' 'A-Z_'); \
    export "CARGO_TARGET_${env_triple}_LINKER=$gnu-gcc" "CC_$(echo "$triple" | tr - _)=$gnu-gcc"; \
    cargo build --locked --release --target "$triple" -p fake-azure --bin fake-azure; \
    cp "target/$triple/release/fake-azure" /fake-azure

# The Azure fake, for the kind e2e only (deploy/e2e). It listens on 8080 in
# the pod (--allow-non-loopback) and needs no privileges.
FROM gcr.io/distroless/cc-debian12:nonroot AS fake-azure
COPY --from=build-fake /fake-azure /fake-azure
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/fake-azure"]

# The provider. The DaemonSet runs it as root (runAsUser: 0, all capabilities
# dropped), as upstream does, because it creates its socket in the node's
# root-owned /var/run/secrets-store-csi-providers; the image itself defaults
# to the unprivileged user.
FROM gcr.io/distroless/cc-debian12:nonroot AS provider
COPY --from=build-provider /akv-csi-provider /akv-csi-provider
USER 65532:65532
EXPOSE 8898 8989
ENTRYPOINT ["/akv-csi-provider"]
