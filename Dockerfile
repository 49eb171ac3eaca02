# syntax=docker/dockerfile:1
# qod-operator image: a release build on Debian, copied onto distroless (glibc, no shell),
# running as the nonroot user (65532). Build from the repository root:
#
#   docker build -t qod-operator:0.1.0 .
#
# The same image runs the operator (`run`, the default) and the simulator (`simulator`).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin qod-operator \
    && cp target/release/qod-operator /usr/local/bin/qod-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/qod-operator /usr/local/bin/qod-operator
USER 65532:65532
# webhook, probes and metrics, simulator
EXPOSE 8443 8080 9091
ENTRYPOINT ["/usr/local/bin/qod-operator"]
CMD ["run"]
