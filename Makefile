# lbd — build, test and check. `make help` lists the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
H2SPEC := github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible

.PHONY: help build test test-short fuzz lint check bench bench-failover demo deps clean package check-package

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install what the build and tests need (Go modules, Debian packages, h2spec)
	@command -v $(GO) >/dev/null || { echo "Go is not installed (expected in /usr/local/go)"; exit 1; }
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=""; for p in gcc iproute2 procps nftables keepalived tcpdump; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi; \
	fi
	$(GO) mod download
	@# h2spec (HTTP/2 conformance; TestH2Spec skips without it): best effort, never fails deps.
	@command -v h2spec >/dev/null || [ -x "$$($(GO) env GOPATH)/bin/h2spec" ] || \
		$(GO) install $(H2SPEC) || echo "deps: h2spec not installed (TestH2Spec will skip); try: go install $(H2SPEC)"

build: deps ## build bin/lbd and bin/lbctl
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lbd ./cmd/lbd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lbctl ./cmd/lbctl

test: deps ## run every test, with the race detector
	$(GO) test -race -count=1 -timeout 18m ./...

test-short: ## unit tests only: no root, no namespaces, no large transfers (under a minute)
	$(GO) test -short -count=1 ./...

# fuzz: each native fuzz target of FUZZ_PKGS for FUZZTIME. New inputs that widen coverage
# are minimized for at most 10s (Go's default, 60s each, can eat a whole run on a busy
# machine while the progress line shows 0 execs/s); failures land in the package's
# testdata/fuzz, to commit with the fix. `make test` replays the seeds and testdata/fuzz
# corpora of every target (go test runs them as unit tests). docs/security.md lists the
# targets and what runs of them found. Shorter: make fuzz FUZZTIME=60s FUZZ_PKGS=./node
FUZZ_PKGS ?= ./...
FUZZTIME ?= 10m
fuzz: ## run every fuzz target of FUZZ_PKGS (default: all) for FUZZTIME (10m) each
	@for pkg in $$($(GO) list $(FUZZ_PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg || exit 1; \
		done; \
	done

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

check: lint ## lint, check that go.mod and go.sum are tidy, and govulncheck (skipped offline)
	$(GO) mod tidy -diff
	GO=$(GO) bash scripts/govulncheck.sh

bench: build ## benchmark lbd against HAProxy and nginx on loopback (installs wrk, haproxy, nginx)
	bash scripts/bench.sh

bench-failover: build ## as root: failover outage of keepalived+HAProxy vs lbd in network namespaces (~2 min)
	bash scripts/failover-bench.sh

demo: build ## as root: two lbd nodes share a VIP in network namespaces; kill the master, measure the outage
	bash scripts/demo.sh

# Package version: git describe made valid for dpkg and rpm (1.2.3.4.gabc1234; without a
# tag 0.0.0~git.abc1234).
PKG_VERSION ?= $(shell v=$$(echo '$(VERSION)' | sed -e 's/^v//' -e 's/-/./g'); case $$v in ([0-9]*) echo $$v;; (*) echo 0.0.0~git.$$v;; esac)
PKG_ARCH ?= $(shell $(GO) env GOARCH)

package: build ## build the .deb and .rpm into dist/ (nfpm, pinned in go.mod)
	mkdir -p dist
	for p in deb rpm; do VERSION='$(PKG_VERSION)' ARCH='$(PKG_ARCH)' $(GO) tool nfpm pkg --packager $$p --config packaging/nfpm.yaml --target dist/ || exit 1; done
	ls -l dist/

check-package: package ## build the packages and list their contents
	dpkg-deb -c dist/lbd_*.deb
	if command -v rpm >/dev/null; then rpm -qlp dist/lbd-*.rpm; fi

clean: ## remove build output
	rm -rf bin dist
