# terratask: `make run` starts everything on embedded defaults; `make test`
# runs every test with real parts (Temporal, terraform, SQLite), under the
# race detector, and lists every skipped test (cmd/testgate: on CI a skip
# not reviewed in .ci/skips.txt fails the run).
GO        ?= go
BIN       := bin/terratask
PKGS      := ./...
# Test packages run in parallel (-p); each end-to-end package starts its own
# Temporal server, so two at a time suits a 2-core CI machine. -count=1: the
# end-to-end tests use binaries (terraform, Temporal) that go test's result
# cache cannot see, so results are never reused. -race: every test binary
# runs under the race detector (the binaries the end-to-end tests start are
# built without it).
TEST_FLAGS ?= -race -p 2 -count=1 -timeout 25m
FUZZ_TIME ?= 10s

.PHONY: all build run test test-short fuzz bench bench-fleet lint vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/terratask

run: build
	./$(BIN) dev

test:
	@command -v terraform >/dev/null 2>&1 || { echo "terraform is not on PATH: the tests run the real terraform binary (see README, Testing)"; exit 1; }
	TF_CLI_CONFIG_FILE=/dev/null $(GO) run ./cmd/testgate -skips .ci/skips.txt -- $(GO) test -json $(TEST_FLAGS) $(PKGS)

test-short:
	TF_CLI_CONFIG_FILE=/dev/null $(GO) test -short $(PKGS)

# Each fuzz target for FUZZ_TIME; `make test` already runs their seed corpora.
fuzz:
	$(GO) test ./server -run '^$$' -fuzz FuzzParseCreate -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzParseListQuery -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzParseLogQuery -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzIdempotencyKey -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzStateRoutes -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzCodecRoute -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzParseWebhook -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzStreamQueries -fuzztime $(FUZZ_TIME)
	$(GO) test ./events -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzParseDecision -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzParsePlanFormat -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzParseScheduleBody -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzParseScheduleListQuery -fuzztime $(FUZZ_TIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzParseWorkspaceAgents -fuzztime $(FUZZ_TIME)

# terratask against bare Terraform and bare Temporal (bench/README.md): one
# table, results added to bench/RESULTS.md and bench/results.json.
# BENCH_QUICK=1 runs the 2-3 minute smoke version; BENCH_FLAGS passes flags.
bench:
	TF_CLI_CONFIG_FILE=/dev/null $(GO) run ./cmd/terratask-bench $(if $(filter 1 true yes,$(BENCH_QUICK)),-quick) $(BENCH_FLAGS)

# Task creation through two API replicas against one, on the fleet of the
# scale-out test (Temporal and the store on PostgreSQL; e2e/fleet/bench_test.go).
bench-fleet:
	$(GO) test ./e2e/fleet -run '^$$' -bench CreateThroughput -benchtime 1x -timeout 30m -v

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w .

lint: vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin
