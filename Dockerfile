# syntax=docker/dockerfile:1
# coreguard image: a static binary on an empty base.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t ghcr.io/coreguard/coreguard:v0.1.0 .
#
# Without a Docker engine, `make image-tar` builds the same image (same
# binary flags, path, entrypoint, user, labels, fixed timestamps) as an OCI
# tarball from the static binary (deploy/image.go; deploy_test.go checks the
# two agree). Reproducible: -trimpath, no VCS stamp, no build ID, and every
# timestamp at 0 (build with SOURCE_DATE_EPOCH=0 and BuildKit's
# rewrite-timestamp=true for byte-identical layers).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" \
    -o /out/coreguard ./cmd/coreguard

# scratch: nothing but the binary (no shell, no libc, no package manager).
FROM scratch
ARG VERSION=devel
COPY --from=build --chmod=0755 /out/coreguard /coreguard
LABEL org.opencontainers.image.source="https://github.com/coreguard/coreguard" \
      org.opencontainers.image.title="coreguard" \
      org.opencontainers.image.version="${VERSION}"
# root, and it must stay root where coreguard runs as the plugin: the NRI
# socket (/var/run/nri/nri.sock, mode 0600) and the pod cgroup files it
# writes (cpu.cfs_quota_us, cpu.max, mode 0644) belong to root. It needs no
# capability for either: the DaemonSet drops them all. `coreguard version`,
# `topology` and `plan` run as any user (`docker run --user 65534 ...`).
USER 0:0
ENTRYPOINT ["/coreguard"]
CMD ["run"]
