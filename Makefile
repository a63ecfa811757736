# Slipway: `make run` serves on :5000 with ./data; `make test` is the whole
# suite (the one command CI runs), installing what it needs first.

GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
MODULE      := $(shell $(GO) list -m)
# Pinned so every machine lints alike; staticcheck v0.8.2 is release 2026.2.2.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(GOBIN)/staticcheck
# Everything except the end-to-end tests, which need the services setup.sh
# starts and run without -race (they drive real, slow clients).
UNIT_PKGS    = $(shell $(GO) list -e ./... | grep -v '^$(MODULE)/integration')
# make build VERSION=v1.2.3 stamps the version `slipway version` prints.
VERSION     ?=
LDFLAGS     := $(if $(VERSION),-ldflags "-X github.com/slipway/slipway/internal/buildinfo.version=$(VERSION)")
# make image builds the Dockerfile as IMAGE; GO_IMAGE replaces the build
# stage's Go image (default: the Dockerfile's). BuildKit when buildx is
# installed, else the classic builder (the Dockerfile needs neither).
IMAGE       ?= slipway:latest
GO_IMAGE    ?=
DOCKER_BUILDKIT ?= $(shell docker buildx version >/dev/null 2>&1 && echo 1 || echo 0)
# helm for `make deploy-check`, from the Go module proxy like the other tools.
HELM_VERSION := v4.3.2
HELM        := $(GOBIN)/helm
# How long each fuzz target runs in `make fuzz` (the list of targets is in
# integration/scripts/fuzz.sh).
FUZZTIME    ?= 30s

.PHONY: build run image test tools lint unit fuzz integration cluster deploy-check helm clean

build:
	$(GO) build $(LDFLAGS) -o bin/slipway ./cmd/slipway

run: build
	bin/slipway serve

image:
	DOCKER_BUILDKIT=$(DOCKER_BUILDKIT) docker build $(if $(GO_IMAGE),--build-arg GO_IMAGE=$(GO_IMAGE)) --build-arg VERSION=$(VERSION) -t $(IMAGE) .

test:
	bash integration/scripts/setup.sh
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory deploy-check
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory cluster

# The race detector needs cgo, hence a C compiler.
tools:
	@command -v gcc >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev; }
	@$(STATICCHECK) -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION:v%=%))' || \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: tools
	test -z "$$(gofmt -l $$($(GO) list -e -f '{{.Dir}}' ./...))" || { gofmt -l $$($(GO) list -e -f '{{.Dir}}' ./...); exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...
	python3 docs/checkrefs.py docs/architecture.md

unit: tools
	$(GO) test -race -count=1 $(UNIT_PKGS)

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash integration/scripts/fuzz.sh

# ./integration/cluster is left to `make cluster`: its own test binary, so
# its MinIO nodes, replicas and HAProxy never run alongside these tests.
integration:
	$(GO) test -count=1 -timeout 40m ./integration/ ./integration/internal/...

# HAProxy in front of three replicas on a distributed MinIO (setup.sh
# installs haproxy); every client talks to HAProxy.
cluster:
	$(GO) test -count=1 -timeout 20m ./integration/cluster/

# The Kubernetes manifests and the Helm chart (deploy/): helm lint and
# template, then deploy/check, a Go module of its own (k8s.io/* stays out of
# Slipway's go.mod) that decodes every object strictly with the Kubernetes
# API types and validates the configuration with package config.
# `helm version` of a go-installed helm says only "v4.3": the module version
# the binary was built from tells.
helm:
	@$(GO) version -m $(HELM) 2>/dev/null | grep -q 'mod[[:space:]]*helm.sh/helm/v4[[:space:]]*$(HELM_VERSION)[[:space:]]' || \
		$(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

deploy-check: tools helm
	$(HELM) lint --strict deploy/helm/slipway
	$(HELM) template slipway deploy/helm/slipway >/dev/null
	cd deploy/check && test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	cd deploy/check && $(GO) vet ./... && $(STATICCHECK) ./...
	cd deploy/check && HELM=$(HELM) $(GO) test -count=1 ./...

clean:
	rm -rf bin
