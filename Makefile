# kubectl-dualstack: build, install, test, demo.
#
#   make demo   the whole flow on a local sandbox (kube-apiserver + moto on loopback)
#   make test   unit tests, packaging checks and end-to-end tests
#
# Names come from plugins.yaml; pkg/catalog's tests check these two lines.
PLUGINS := kubectl-dualstack oc-dualstack
COMPLETION_SHIM := kubectl_complete-dualstack

MODULE      := github.com/kubectl-dualstack/kubectl-dualstack
BIN_DIR     ?= $(CURDIR)/bin
INSTALL_DIR ?= $(shell go env GOPATH)/bin
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DATE  ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -X $(MODULE)/pkg/plugin.version=$(VERSION) -X $(MODULE)/pkg/plugin.commit=$(COMMIT) -X $(MODULE)/pkg/plugin.buildDate=$(BUILD_DATE)

# The in-process kube-apiserver reports the release it is built from, as a
# release build of kube-apiserver does (keep in step with test/go.mod).
KUBE_VERSION := v1.37.2
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37

MOTO_VERSION := 5.2.1
E2E_TIMEOUT  ?= 60m

# The stages of make test pipe `go test -json` through test/cmd/testsum,
# which prints the results (a line per e2e test) and adds the counts here.
SHELL  := bash
COUNTS := $(BIN_DIR)/test-counts

.PHONY: all build install uninstall test test-start unit e2e krew-validate bench fuzz faults demo sandbox vet lint fmt moto node-deps node-test clean
.PHONY: docs release-snapshot release-check

all: build

build: ## the plugin binary, its oc name and the completion shim, in bin/
	@mkdir -p $(BIN_DIR)
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o $(BIN_DIR)/kubectl-dualstack ./cmd/kubectl-dualstack
	ln -sf kubectl-dualstack $(BIN_DIR)/oc-dualstack
	install -m 0755 hack/$(COMPLETION_SHIM) $(BIN_DIR)/$(COMPLETION_SHIM)

install: build ## install every name in INSTALL_DIR (default: $(go env GOPATH)/bin; put it on PATH)
	@mkdir -p $(INSTALL_DIR)
	install -m 0755 $(BIN_DIR)/kubectl-dualstack $(INSTALL_DIR)/kubectl-dualstack
	ln -sf kubectl-dualstack $(INSTALL_DIR)/oc-dualstack
	install -m 0755 hack/$(COMPLETION_SHIM) $(INSTALL_DIR)/$(COMPLETION_SHIM)
	@echo "installed $(PLUGINS) $(COMPLETION_SHIM) in $(INSTALL_DIR)"

uninstall:
	rm -f $(addprefix $(INSTALL_DIR)/,$(PLUGINS) $(COMPLETION_SHIM))

test: test-start vet unit krew-validate release-check e2e ## everything CI runs (~39 min warm, 49 with a cold race build, ~64 fully cold on 2 cores)
	@cd test && go run ./cmd/testsum -total $(COUNTS)

test-start:
	@mkdir -p $(BIN_DIR) && echo "start $$(date +%s)" > $(COUNTS)
	@echo "==> make test: vet, unit (~2 min), krew-validate (~1 min), release-check (~15 s warm, a few min cold), e2e (~30 min warm, with the real node; its first build compiles the kube-apiserver: ~15 min more)"

unit: ## main module tests, with the race detector
	@echo "==> [2/5] unit: the main module's tests with the race detector"
	@set -o pipefail; go test -json -race -count=1 ./... | (cd test && go run ./cmd/testsum -stage unit -counts $(COUNTS))

krew-validate: ## render .krew.yaml and run krew's own manifest validator on it
	@echo "==> [3/5] krew-validate: the krew manifest through krew's own validator and installer"
	BIN_DIR=$(BIN_DIR) bash hack/validate-krew-manifest.sh

release-check: ## goreleaser --snapshot for this platform; krew installs the archive offline; kubectl dualstack version runs it
	@echo "==> [4/5] release-check: a goreleaser snapshot installed by krew from the local archive, offline"
	BIN_DIR=$(BIN_DIR) bash hack/release-check.sh

release-snapshot: ## goreleaser --snapshot: every platform's archive in dist/ (cold build cache: ~20 min on 2 cores), then the krew install check on it
	@mkdir -p $(BIN_DIR)
	cd tools/release && GOWORK=off go build -o $(BIN_DIR)/ github.com/goreleaser/goreleaser/v2
	$(BIN_DIR)/goreleaser release --snapshot --clean
	BIN_DIR=$(BIN_DIR) RELEASE_DIST=$(CURDIR)/dist bash hack/release-check.sh

docs: ## the command reference in docs/commands/ (checked in: a unit test fails when it is stale) and man pages in bin/man/man1
	go run ./hack/gendocs -markdown docs/commands -man $(BIN_DIR)/man/man1

e2e: moto node-deps ## the built binary against a real kube-apiserver and moto, and test/node's real node (first build is slow: ~15 min cold)
	@echo "==> [5/5] e2e: the plugin binary through the real kubectl against a real kube-apiserver and moto (a line per test as it ends)"
	@set -o pipefail; cd test && go test -json -count=1 -timeout $(E2E_TIMEOUT) -ldflags "$(KUBE_LDFLAGS)" ./... | go run ./cmd/testsum -stage e2e -tests -counts $(COUNTS)

BENCH_FLAGS ?=
bench: moto ## benchmarks next to their anchors from the same run; table in bin/bench.md (BENCH_FLAGS=-short: fixtures a tenth the size; full size: the rest took 10 min on 2 cores, the throttled 2,000-instance applies add 21 min, Route 53 at 5,000 records 3 min)
	@mkdir -p $(BIN_DIR)
	@cd test && go test -count=1 -run '^$$' -bench . -benchtime=2x -timeout 90m $(BENCH_FLAGS) -ldflags "$(KUBE_LDFLAGS)" ./e2e/ > $(BIN_DIR)/bench.log 2>&1; \
	  status=$$?; grep -E '^(Benchmark|goos|goarch|cpu|PASS|FAIL|ok)' $(BIN_DIR)/bench.log; \
	  go run ./cmd/benchtable $(BIN_DIR)/bench.log > $(BIN_DIR)/bench.md && echo && cat $(BIN_DIR)/bench.md; \
	  echo "(full log: $(BIN_DIR)/bench.log; table: $(BIN_DIR)/bench.md)"; exit $$status

FUZZTIME  ?= 60s
FUZZ_PKGS ?= ./pkg/network ./pkg/aws ./pkg/platform ./pkg/status

fuzz: ## run each fuzzer for FUZZTIME, one at a time (their seed corpora already run in make test)
	@set -e; for pkg in $(FUZZ_PKGS); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    go test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg; \
	  done; \
	done

faults: moto ## every fault-injection point of the upgrade flow (~21 min on 2 cores; make test runs three)
	@mkdir -p $(BIN_DIR)
	@cd test && DUALSTACK_FAULTS=full go test -count=1 -run '^TestUpgradeFaultsConverge$$' -timeout 60m -v -ldflags "$(KUBE_LDFLAGS)" ./e2e/ > $(BIN_DIR)/faults.log 2>&1; \
	  status=$$?; grep -E '^\s*--- (PASS|FAIL|SKIP)|^(ok|FAIL)|converged after|did not converge|fault injection:' $(BIN_DIR)/faults.log; \
	  echo "(full log: $(BIN_DIR)/faults.log)"; exit $$status

# REAL_NODE=1: the sandbox is a kubeadm-like cluster on a real node on this
# machine (as root; node-deps installs its packages) instead of the simulated
# OpenShift on AWS.
SANDBOX_DEPS := build $(if $(REAL_NODE),node-deps,moto)
SANDBOX_FLAGS := $(if $(REAL_NODE),-real-node)

demo: $(SANDBOX_DEPS) ## start the sandbox, convert it with the plugin (status, aws plan, upgrade, status, validate), print a summary, stop (REAL_NODE=1: on a real node, kubeadm-like)
	cd test && go run -ldflags "$(KUBE_LDFLAGS)" ./cmd/sandbox -bin-dir $(BIN_DIR) -state-dir $(CURDIR)/.sandbox $(SANDBOX_FLAGS)

sandbox: $(SANDBOX_DEPS) ## start the sandbox IPv4-only and keep it up until Ctrl-C for your own commands (source .sandbox/env; REAL_NODE=1: on a real node)
	cd test && go run -ldflags "$(KUBE_LDFLAGS)" ./cmd/sandbox -bin-dir $(BIN_DIR) -state-dir $(CURDIR)/.sandbox -hold $(SANDBOX_FLAGS)

vet: ## go vet both modules and check formatting
	@echo "==> [1/5] vet: go vet on the three modules, gofmt"
	go vet ./...
	cd test && go vet ./...
	cd tools && go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint: vet

fmt:
	gofmt -w $$(git ls-files '*.go')

moto: ## moto_server $(MOTO_VERSION), unless one is on PATH already
	@command -v moto_server >/dev/null 2>&1 || python3 -m pip install --quiet 'moto[server]==$(MOTO_VERSION)'
	@command -v moto_server >/dev/null 2>&1 || { echo "moto_server is not on PATH after installing moto; add pip's script directory to PATH"; exit 1; }

# What test/node (a real node on this machine: containerd, runc, the bridge CNI)
# needs, by Debian package name. Installed only when missing (as root, via apt-get).
NODE_DEBS := containerd runc containernetworking-plugins iptables iproute2 busybox-static curl

node-deps: ## install the node's Debian packages ($(NODE_DEBS)) if any is missing
	@missing=""; for p in $(NODE_DEBS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "node-deps: $(NODE_DEBS) already installed"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "node-deps: missing:$$missing; installing needs root (apt-get)"; exit 1; fi; \
	echo "==> node-deps: apt-get install$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null && \
	dpkg-query -W -f='  $${Package} $${Version}\n' $(NODE_DEBS)

node-test: node-deps ## test/node alone: containerd, runc and the bridge CNI on this machine, as root (~5 s)
	cd test && go test -count=1 -v ./node/

clean:
	rm -rf $(BIN_DIR) .sandbox
