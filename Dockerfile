# Slipway as a container: a static binary on an empty (scratch) image.
#
#   make image                                   # docker build -t slipway:dev .
#   docker run -p 5000:5000 -e SLIPWAY_ADMIN_PASSWORD=... slipway:dev
#
# The image runs as 65532:65532 and writes only under /data (the storage
# root and the token signing key; a VOLUME) and /tmp, so it also runs with
# a read-only root filesystem (--read-only --tmpfs /tmp). Every RUN is in
# exec form: the build stage needs a Go toolchain and CA certificates but no
# shell, so any image holding those can be GO_IMAGE.

# The Go of go.mod's "go" line.
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
# The image's writable folders, made here because scratch has no mkdir
# (first: every later layer of this stage copies the whole stage again on
# some storage drivers, so the cheap, never-changing steps go first).
WORKDIR /out/rootfs/data
WORKDIR /out/rootfs/tmp
# GOPROXY/GOFLAGS: the builder's module proxy and extra go flags, when the
# defaults will not do (a mirror, an offline proxy).
ARG GOPROXY
ARG GOFLAGS
ENV CGO_ENABLED=0 GOPROXY=${GOPROXY} GOFLAGS=${GOFLAGS}
WORKDIR /src
# Modules in their own layer: it is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN ["go", "mod", "download"]
# VERSION is what `slipway version` prints (as `make build VERSION=...`);
# empty: "dev". GOFLAGS carries the flags because an exec-form RUN expands
# no variables; -s -w drop the symbol tables (stack traces keep their
# function names and lines).
ARG VERSION=
ENV GOFLAGS="${GOFLAGS} -trimpath '-ldflags=-s -w -X=github.com/slipway/slipway/internal/buildinfo.version=${VERSION}'"
COPY . .
RUN ["go", "build", "-o", "/out/slipway", "./cmd/slipway"]

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /out/rootfs/ /
COPY --from=build /out/slipway /slipway
# Everything a server keeps locally goes to /data: the storage root (when
# storage is a folder) and, following it unless auth.signing_key is set
# (e.g. to a mounted Secret), the token signing key /data/keys/token.pem,
# generated on first start. The variable wins over a configuration file's
# storage.filesystem.root; pass it empty to let the file decide.
ENV SLIPWAY_STORAGE_FILESYSTEM_ROOT=/data
USER 65532:65532
VOLUME /data
EXPOSE 5000
# GET /healthz on the port of http.addr (the same SLIPWAY_* variables).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/slipway", "healthcheck"]
ENTRYPOINT ["/slipway"]
CMD ["serve"]
