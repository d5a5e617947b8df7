# Everything a fresh machine needs comes from the project's own files:
# Go modules from go.sum, Azurite from package-lock.json (npm ci).

GO       ?= go
BIN      := $(CURDIR)/bin
PKGS     := ./runtime/... ./components/... ./stacks/... ./integration/...
# Integration suites start real processes; 2 packages at a time keeps a
# 2-core CI machine responsive without serialising everything.
TESTFLAGS ?= -count=1 -p 2 -timeout 25m

.PHONY: all deps build test lint demo clean

all: build

## deps: install the pinned Azurite from package-lock.json
deps: node_modules/.bin/azurite

node_modules/.bin/azurite: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## build: every binary under runtime/cmd into bin/
build:
	cd runtime && $(GO) build -o $(BIN)/ ./cmd/...

## test: everything CI runs, unit and integration (real processes on Azurite)
test: deps build
	BOTE_BIN_DIR=$(BIN) $(GO) test $(TESTFLAGS) $(PKGS)

## lint: formatting and vet in every module
lint:
	@out=$$(gofmt -l runtime components stacks integration); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## demo: run the platform locally on Azurite
demo: deps build
	BOTE_BIN_DIR=$(BIN) $(GO) run ./integration/cmd/demo

clean:
	rm -rf $(BIN) .demo
