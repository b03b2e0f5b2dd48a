# syntax=docker/dockerfile:1
#
# Images of akv-csi-provider (the default, last target) and of the Azure
# fake the kind e2e runs in the cluster (target fake-azure):
#
#   docker build -t akv-csi-provider:0.1.0 .
#   docker build --target fake-azure -t fake-azure:e2e .
#
# `make image` does both. The builder is pinned to the Debian release the
# runtime image is built from (bookworm), so the binaries' glibc matches.
# The runtime is distroless: no shell, no package manager, CA bundle and
# glibc only. Distroless publishes no version tags; pin the runtime by
# digest (FROM ...@sha256:...) in a release pipeline.

FROM rust:1.95.0-bookworm AS source
WORKDIR /src
# The whole workspace: cargo reads every member's manifest and targets.
COPY . .

# Build dates come from SOURCE_DATE_EPOCH when given (reproducible builds).
FROM source AS build-provider
ARG SOURCE_DATE_EPOCH
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin akv-csi-provider \
    && cp target/release/akv-csi-provider /akv-csi-provider

FROM source AS build-fake
ARG SOURCE_DATE_EPOCH
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p fake-azure --bin fake-azure \
    && cp target/release/fake-azure /fake-azure

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
