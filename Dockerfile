# syntax=docker/dockerfile:1
# qod-operator image: FROM scratch, holding only the operator (a glibc build with the `image`
# profile of Cargo.toml), exactly the shared libraries it links, the dynamic loader, the CA bundle
# and /etc/passwd; no shell, no package manager. It runs as the nonroot user (65532) and writes
# nothing outside its mounted volumes, so a read-only root filesystem suits it. Under 25 MB.
# tests/image/rootfs lays out that filesystem; the two ways to build (see the README):
#
#   docker build -t qod-operator:0.1.0 .
#       the last stage: builds the operator in the `build` stage (rust:1.95-bookworm) and copies
#       the filesystem tests/image/rootfs made there onto scratch.
#
#   tests/image/build
#       buildah, with no pulled image and no daemon (what the tests run): builds the operator on
#       this machine, lays the filesystem out in target/image/context/rootfs, then builds the
#       `prepared` stage with that folder as the context. By hand:
#       buildah bud --target prepared -f Dockerfile -t qod-operator:0.1.0 target/image/context
#       (docker build --target prepared -f Dockerfile target/image/context does the same).
#
# The same image runs the operator (`run`, the default) and the simulator (`simulator`).

# What both final stages share: no file, only the image's configuration.
FROM scratch AS base
USER 65532:65532
# webhook, probes and metrics, simulator
EXPOSE 8443 8080 9091
ENTRYPOINT ["/usr/local/bin/qod-operator"]
CMD ["run"]

# From a context that holds rootfs/ only, made by tests/image/rootfs on the build machine.
FROM base AS prepared
COPY rootfs/ /

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile image --locked --bin qod-operator \
    && tests/image/rootfs target/image/qod-operator /rootfs

# The default target (docker build .).
FROM base
COPY --from=build /rootfs/ /
