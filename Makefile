# appnet's build and test entry points. `make test` is what CI runs
# (.ci/run); it installs what the tests need first.

GO ?= go
STATICCHECK = $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test tools tidy-check fmt-check vet staticcheck lab-check unit build fuzz bench

test: tools tidy-check fmt-check vet staticcheck lab-check unit

# Debian packages the interop tests use (scripts/tools.txt).
tools:
	@sh scripts/install-tools

# go.mod and go.sum are tidy, and every module version resolves (the module
# proxy here blocks some versions; see ../shared/DEPENDENCIES.md).
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit"; exit 1; }
	@$(GO) list -m all > /dev/null
	@echo "tidy-check: ok ($$($(GO) list -m all | wc -l) modules)"

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo "fmt-check: ok"

vet:
	$(GO) vet ./...

staticcheck:
	$(STATICCHECK) ./...

# What a newcomer runs first: the default lab starts and every probe passes.
lab-check:
	$(GO) run ./cmd/appnet lab --check

unit:
	$(GO) test -race -timeout 20m ./...

build:
	$(GO) build -o bin/appnet ./cmd/appnet

# A short coverage-guided run of every fuzz test (they also run, on their
# seeds, in `make test`).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
