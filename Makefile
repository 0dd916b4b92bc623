# Airlock: `make build` builds the binary, `make test` installs the pinned test
# tools (cached outside the repo) and runs every test.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/airlock-dev/airlock/internal/server.Version=$(VERSION)

.PHONY: build test fuzz bench serve

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o airlock ./cmd/airlock

serve: build
	./airlock serve

test:
	@TOOLS=$$(.ci/tools.sh) && export PATH="$$TOOLS:$$PATH" AIRLOCK_TEST_TOOLS="$$TOOLS" && \
	$(GO) vet ./... && $(GO) test -count=1 -timeout 30m ./...

# Short fuzzing of every parser of untrusted input (the seeds also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	@for t in $$($(GO) test -list 'Fuzz.*' ./internal/... | grep ^Fuzz); do \
	  pkg=$$(grep -rl "func $$t(" internal --include=*_test.go | xargs -n1 dirname | head -1); \
	  echo "fuzz $$t ($$pkg)"; $(GO) test ./$$pkg -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

bench:
	@TOOLS=$$(.ci/tools.sh) && PATH="$$TOOLS:$$PATH" $(GO) run ./bench/registry

bench-import: ; @TOOLS=$$(.ci/tools.sh) && PATH="$$TOOLS:$$PATH" $(GO) run ./bench/import
