# Everything a fresh machine needs comes from the project's own files:
# Go modules from go.sum, Azurite, Microsoft's relay clients (hyco-https,
# hyco-ws, for runtime/relay's interop test) and axe-core (for the console's
# browser test) from package-lock.json (npm ci), and Debian's chromium and
# firefox-esr for that test when missing (.ci/browsers).

GO       ?= go
BIN      := $(CURDIR)/bin
# make test runs three things at once (docs/benchmarks.md, "make test
# wall time on a clean clone"):
#  - the integration packages (ITPKGS: real processes over loopback, mostly
#    waiting on them), two at a time (.ci/slots), the longest first so that
#    the short ones fill the other slot instead of a long one ending the run
#    alone; go test links the next two test binaries meanwhile (-p 4), so
#    a package waits for a free slot rather than for its link (the time go
#    test prints for a package includes that wait);
#  - the unit packages (UNITPKGS), two at a time: their time is mostly
#    linking test binaries, which in one go test with the integration
#    packages waited for a slot a waiting integration package held. The
#    Pulumi programs' (components/, stacks/) take the longest to link:
#    they come first;
#  - the fuzz targets, one at a time (.ci/fuzz).
# The two go tests compile, link and vet at nice 5 (NICE): the tests' processes,
# which wait with deadlines, get more of the CPU than the linkers beside
# them, and the links still get a share of a machine loaded by others
# (nice 10 starved them there: the unit packages ended the run 2 min
# after the integration packages).
ITPKGS   := ./integration/e2e ./integration/console ./integration/agent ./integration/gateway \
	./integration/runsserver ./integration/drift ./integration/runs ./integration/azurite ./integration/chaos \
	./integration/examples ./integration/mcp ./integration/bus ./integration/ops ./integration/replicas \
	./integration/apikeys ./integration/...
UNITPKGS := ./components/images ./components/... ./stacks/... ./runtime/... ./examples/...
PKGS     := ./runtime/... ./components/... ./stacks/... ./integration/... ./examples/...
TESTFLAGS ?= -count=1 -timeout 25m
NICE     := -toolexec 'nice -n 5'

.PHONY: all deps build test test-servicebus lint demo demo-gateway bench chaos chaos-short golden azure-schema images provider-mirror release clean

all: build

## deps: install the pinned Azurite, relay clients and axe-core from package-lock.json,
## and Debian's chromium and firefox-esr for the browser tests when missing (.ci/browsers)
deps: node_modules/.bin/azurite
	@.ci/browsers

node_modules/.bin/azurite: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## build: every binary under runtime/cmd into bin/
build:
	cd runtime && $(GO) build -o $(BIN)/ ./cmd/...

## test: everything CI runs, unit and integration (real processes on Azurite), and a short fuzz run;
## no measurements (those are benchmarks: make bench). The unit packages' and the fuzz run's
## output comes after the integration packages'.
# deps (npm ci: mostly network and disk) and build (CPU) run at once.
test:
	@$(MAKE) --no-print-directory -j2 deps build
	@side=$$(mktemp -d); \
	BOTE_BIN_DIR=$(BIN) $(GO) test $(TESTFLAGS) $(NICE) -p 2 $(UNITPKGS) >$$side/unit 2>&1 & unitpid=$$!; \
	$(MAKE) --no-print-directory fuzz FUZZJOBS=1 >$$side/fuzz 2>&1 & fuzzpid=$$!; \
	SLOTS_DIR=$$side SLOTS=2 BOTE_BIN_DIR=$(BIN) $(GO) test $(TESTFLAGS) $(NICE) -p 4 -exec $(CURDIR)/.ci/slots $(ITPKGS); testrc=$$?; \
	wait $$unitpid; unitrc=$$?; wait $$fuzzpid; fuzzrc=$$?; cat $$side/unit $$side/fuzz; rm -rf $$side; \
	[ $$testrc -eq 0 ] && [ $$unitrc -eq 0 ] && [ $$fuzzrc -eq 0 ]
	@[ -n "$$BOTE_TEST_SERVICEBUS_CONNECTION_STRING" ] || echo "note: the Service Bus bus contract did not run (it needs a namespace: make test-servicebus, docs/messaging.md)"

## test-servicebus: the bus contract suite against a real Service Bus namespace
## (BOTE_TEST_SERVICEBUS_CONNECTION_STRING, Manage rights: in Azure, or the emulator under Docker)
test-servicebus:
	@[ -n "$$BOTE_TEST_SERVICEBUS_CONNECTION_STRING" ] || { echo "set BOTE_TEST_SERVICEBUS_CONNECTION_STRING to a Service Bus namespace connection string (Manage rights)"; exit 2; }
	cd integration && $(GO) test -count=1 -v ./bus/ -run ServiceBus

## fuzz: every Fuzz target under runtime/ for FUZZTIME each (seeds in
# testdata/fuzz; longer: make fuzz FUZZTIME=5m)
FUZZTIME ?= 1s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) $(if $(FUZZJOBS),FUZZJOBS=$(FUZZJOBS)) .ci/fuzz

## lint: formatting and vet in every module
lint:
	@out=$$(gofmt -l runtime components stacks integration); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## demo: run the platform locally on Azurite (KEEP=1: keep it up and serve the web console until Ctrl-C)
demo: deps build
	BOTE_BIN_DIR=$(BIN) $(GO) run ./integration/cmd/demo $(if $(KEEP),--keep)

## demo-gateway: the messaging gateway alone with the sample connectors, for examples/ (until Ctrl-C)
demo-gateway: deps build
	BOTE_BIN_DIR=$(BIN) $(GO) run ./integration/cmd/demo --gateway

## bench: the benchmarks whose figures are in docs/benchmarks.md
bench: deps build
	cd runtime && $(GO) test ./relay -run '^$$' -bench . -benchtime 1000x -count 3
	cd integration && BOTE_BIN_DIR=$(BIN) $(GO) test ./runs/ -run '^$$' -bench EnqueueToClaim -benchtime 100x
	cd integration && $(GO) test ./runs/ -run '^$$' -bench DriftSchedulerIdleCost -benchtime 1x
	cd runtime && $(GO) test ./policy/ -run '^$$' -bench Evaluate1000Resources -benchtime 20x -count 3
	cd integration && BOTE_BIN_DIR=$(BIN) $(GO) test ./runbench/ -run '^$$' -bench . -benchtime 1x -count 1
	cd integration && BOTE_BIN_DIR=$(BIN) $(GO) test ./gateway/ -run '^$$' -bench 'Broadcast|SessionMemory|IdleConnector|DeliveryLatency|ReconnectStorm|CallRoundTrip' -benchtime 1x -count 1 -timeout 60m
	cd runtime && $(GO) test ./payload -run '^$$' -bench . -benchtime 200x -count 2
	cd integration && $(GO) test ./tfprovider/ -run '^$$' -bench ProviderInit -benchtime 1x
	cd integration && BOTE_BENCH_PROVIDER_MB=100 BOTE_BIN_DIR=$(BIN) $(GO) test ./agent/ -run '^$$' -bench PlanWithAProvider -benchtime 1x

## chaos: the long chaos profile: numbered messages and runs while
# gateway, ops server and agent processes are killed and Azurite restarts; figures in docs/reliability.md
chaos: deps build
	cd integration && BOTE_CHAOS=long BOTE_BIN_DIR=$(BIN) $(GO) test ./chaos/ -run TestChaos -count=1 -timeout 30m -v

## chaos-short: the short chaos profile alone (about 20 s; make test runs it too)
chaos-short: deps build
	cd integration && BOTE_CHAOS=short BOTE_BIN_DIR=$(BIN) $(GO) test ./chaos/ -run TestChaos -count=1 -timeout 10m -v

## golden: regenerate golden files after an intended change (review the diff)
# Packages whose tests use a golden helper (runtime/internal/golden,
# components/infratest) take -update.
golden:
	cd runtime && $(GO) test $$(grep -rl 'internal/golden"' --include=*_test.go . | xargs -n1 dirname | sort -u) -update
	cd components && $(GO) test $$(grep -rl 'infratest"' --include=*_test.go . | xargs -n1 dirname | sort -u) -update
	cd stacks && $(GO) test . -update

## azure-schema: refresh the trimmed azure-native schema the conformance tests use
# (components/infratest/testdata/azure-native-schema.json) from the provider's
# Node.js SDK of AZURE_NATIVE_VERSION; review the diff, then
# azure-native-replace.json by hand for any new type or API version.
AZURE_NATIVE_VERSION ?= 2.90.0
azure-schema:
	rm -rf .azure-schema && mkdir .azure-schema
	cd .azure-schema && npm pack --silent @pulumi/azure-native@$(AZURE_NATIVE_VERSION) >/dev/null && tar xzf pulumi-azure-native-$(AZURE_NATIVE_VERSION).tgz
	cd components && $(GO) run ./infratest/schemagen -pkg ../.azure-schema/package -tarball ../.azure-schema/pulumi-azure-native-$(AZURE_NATIVE_VERSION).tgz -out infratest/testdata/azure-native-schema.json
	rm -rf .azure-schema

## images: the runtime images into the OCI layout dist/oci (no Docker);
## the agent needs TERRAFORM_FLAGS, e.g. -terraform-version 1.11.4
## -terraform-linux-amd64 FILE.zip -terraform-linux-amd64-sha256 HEX (and arm64)
TERRAFORM_FLAGS ?=
images:
	$(GO) run ./components/cmd/images -layout dist/oci $(TERRAFORM_FLAGS) $(if $(PROVIDER_MIRROR),-provider-mirror $(PROVIDER_MIRROR))

## provider-mirror: WORKSPACES="dir ..." -> dist/provider-mirror, the providers their lock files name, for
## linux/amd64 and linux/arm64, downloaded from their registries (run it where they are reachable);
## then: make images PROVIDER_MIRROR=dist/provider-mirror TERRAFORM_FLAGS=...
## (docs/agent.md, "Providers without internet")
PROVIDER_MIRROR_OUT ?= dist/provider-mirror
provider-mirror:
	@test -n "$(WORKSPACES)" || { echo 'give WORKSPACES="infra/prod ..." (configurations with their .terraform.lock.hcl)'; exit 2; }
	@mkdir -p $(PROVIDER_MIRROR_OUT)
	@for w in $(WORKSPACES); do \
	  test -f $$w/.terraform.lock.hcl || { echo "$$w has no .terraform.lock.hcl: run terraform init there (or opsbot runs lockfile RUN) and commit it"; exit 2; }; \
	  terraform -chdir=$$w providers mirror -platform=linux_amd64 -platform=linux_arm64 $(abspath $(PROVIDER_MIRROR_OUT)) || exit 1; \
	done

## release: agent, connector and opsbot binaries with SHA256SUMS into dist/
release:
	$(GO) run ./components/cmd/images -release dist

clean:
	rm -rf $(BIN) .demo dist/oci
