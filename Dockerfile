# coreguard image: a static binary on an empty base.
# Build: docker build -t coreguard:dev .   (no Docker engine runs on the project's CI machines;
# deploy/ will add an image tarball built without Docker.)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/coreguard ./cmd/coreguard

FROM scratch
COPY --from=build /out/coreguard /coreguard
ENTRYPOINT ["/coreguard"]
CMD ["run"]
