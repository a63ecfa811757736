#!/usr/bin/env bash
# Installs and starts everything the integration tests (integration/*_test.go)
# need, on a Debian 12 machine with Go, as root. Idempotent: each step is
# skipped when its result is already there, so running it twice is cheap.
#
#   - Debian packages: docker.io containerd skopeo chromium haproxy (apt-get
#     update only if one is missing); chromium runs the admin pages' browser
#     tests, haproxy balances the replicas of integration/cluster
#   - Go tools into $(go env GOPATH)/bin: crane, oras, regctl, staticcheck, the stock
#     distribution registry, MinIO, versitygw and cosign (pinned versions
#     below)
#   - the OCI distribution-spec conformance binary, built once into
#     ${XDG_CACHE_HOME:-$HOME/.cache}/slipway-it/conformance/conformance
#   - dockerd (vfs, no iptables, no bridge), started in the background if
#     `docker info` does not answer; log in $SLIPWAY_IT_DOCKERD_LOG
#
# The tests find the same paths: keep the two in step
# (integration/internal/harness/tools.go).
set -euo pipefail

CRANE_VERSION=v0.22.1
ORAS_VERSION=v1.3.6
REGCTL_VERSION=v0.11.7
STATICCHECK_VERSION=v0.8.2
REGISTRY_VERSION=v3.1.2
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
VERSITYGW_VERSION=v1.8.0
COSIGN_VERSION=v2.6.5
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111

CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/slipway-it"
CONFORMANCE_DIR="$CACHE_DIR/conformance"
DOCKERD_LOG="${SLIPWAY_IT_DOCKERD_LOG:-/var/log/slipway-it-dockerd.log}"

say() { printf 'setup: %s\n' "$*"; }

if ! command -v go >/dev/null 2>&1; then
	echo "setup: go is not on PATH" >&2
	exit 1
fi
GOBIN_DIR="$(go env GOBIN)"
[ -n "$GOBIN_DIR" ] || GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"

# --- Debian packages -------------------------------------------------------
missing=()
for pkg in docker.io containerd skopeo chromium haproxy; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$pkg")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: need root to install ${missing[*]}" >&2
		exit 1
	fi
	say "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# Keep the packages' init scripts from starting a dockerd with default
	# flags (overlay2, iptables): this script starts the one the tests need.
	policy_rc=/usr/sbin/policy-rc.d
	own_policy=0
	if [ ! -e "$policy_rc" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
		chmod +x "$policy_rc"
		own_policy=1
	fi
	rc=0
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
	[ "$own_policy" -eq 0 ] || rm -f "$policy_rc"
	if [ "$rc" -ne 0 ]; then
		echo "setup: apt-get install ${missing[*]} failed ($rc)" >&2
		exit "$rc"
	fi
else
	say "Debian packages present: docker.io containerd skopeo chromium haproxy"
fi
# The browser tests (integration/browser*_test.go) start it by this name.
if ! command -v chromium >/dev/null 2>&1; then
	echo "setup: chromium is installed but not on PATH" >&2
	exit 1
fi

# --- Go tools ----------------------------------------------------------------
# go_tool NAME MODULE_PATH@VERSION: installs unless $GOBIN_DIR/NAME was built
# from that module version (go version -m tells).
go_tool() {
	local name="$1" pkgver="$2"
	local pkg="${pkgver%@*}" ver="${pkgver##*@}" bin="$GOBIN_DIR/$1"
	if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | awk '$1=="path"{p=$2} $1=="mod"{m=$3} END{print p" "m}' | grep -qx "$pkg $ver"; then
		say "$name $ver present ($bin)"
		return
	fi
	say "go install $pkgver"
	go install "$pkgver"
}
go_tool crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
go_tool oras "oras.land/oras/cmd/oras@$ORAS_VERSION"
go_tool regctl "github.com/regclient/regclient/cmd/regctl@$REGCTL_VERSION"
go_tool staticcheck "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
go_tool registry "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
# MinIO: the S3 server the storage/s3 tests and the S3 integration tests
# start themselves (about two minutes to build; cached in GOBIN).
go_tool minio "github.com/minio/minio@$MINIO_VERSION"
# versitygw: the second S3 implementation (posix backend on a temp folder,
# which needs user extended attributes: ext4 and tmpfs have them) for the
# same tests (about three and a half minutes to build; cached in GOBIN).
go_tool versitygw "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
# cosign: signs and attests test images offline (keys, no transparency
# log) for the promotion gates' tests (a few minutes to build; cached).
go_tool cosign "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"

# --- OCI conformance suite ---------------------------------------------------
# At this version the suite is a `main` package meant for `go build` (its
# README; `go test` still works but is the deprecated "legacy" path). It is
# configured by OCI_* variables and writes results.yaml, junit.xml and
# report.html into OCI_RESULTS_DIR.
mkdir -p "$CONFORMANCE_DIR"
stamp="$CONFORMANCE_DIR/conformance.version"
if [ -x "$CONFORMANCE_DIR/conformance" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$CONFORMANCE_VERSION" ]; then
	say "conformance $CONFORMANCE_VERSION present ($CONFORMANCE_DIR/conformance)"
else
	say "building conformance $CONFORMANCE_VERSION in $CONFORMANCE_DIR"
	(
		cd "$CONFORMANCE_DIR"
		export GOWORK=off GOFLAGS=-mod=mod
		rm -f go.mod go.sum
		go mod init slipway-it/conformance 2>/dev/null
		go get "github.com/opencontainers/distribution-spec/conformance@$CONFORMANCE_VERSION"
		go build -trimpath -ldflags "-X main.Version=${CONFORMANCE_VERSION##*-}" \
			-o conformance.tmp github.com/opencontainers/distribution-spec/conformance
		mv conformance.tmp conformance
		echo "$CONFORMANCE_VERSION" >"$stamp"
	)
fi

# --- dockerd -----------------------------------------------------------------
if timeout 20 docker info >/dev/null 2>&1; then
	say "dockerd already running"
else
	if pgrep -x dockerd >/dev/null 2>&1; then
		say "dockerd process exists but does not answer yet; waiting"
	else
		say "starting dockerd (log: $DOCKERD_LOG)"
		mkdir -p "$(dirname "$DOCKERD_LOG")"
		nohup dockerd --iptables=false --bridge=none --storage-driver=vfs >>"$DOCKERD_LOG" 2>&1 </dev/null &
	fi
	for _ in $(seq 1 60); do
		if timeout 10 docker info >/dev/null 2>&1; then
			break
		fi
		sleep 1
	done
	if ! timeout 10 docker info >/dev/null 2>&1; then
		echo "setup: dockerd did not answer within 60s; last lines of $DOCKERD_LOG:" >&2
		tail -n 30 "$DOCKERD_LOG" >&2 || true
		exit 1
	fi
	say "dockerd is up"
fi
for sock in /run/docker/containerd/containerd.sock /var/run/docker/containerd/containerd.sock; do
	if [ -S "$sock" ]; then
		say "docker's containerd socket: $sock"
		break
	fi
done
say "done"
