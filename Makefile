# Pinned tools, built from the Go module proxy into .tools/bin (gitignored).
TEMPORAL_CLI_VERSION  := v1.5.1
STRIPE_MOCK_VERSION   := v0.203.0
WORKFLOWCHECK_VERSION := v0.6.0
MAILPIT_VERSION       := v1.33.1
VERSITYGW_VERSION     := v1.8.0
PROMTOOL_VERSION      := v0.316.0
# Temporal in its production shape (make cluster): the server the CLI above
# embeds, its SQL schema tool, and the standalone Web UI.
TEMPORAL_SERVER_VERSION := v1.29.1
TEMPORAL_UI_VERSION     := v2.42.1

TOOLS := $(CURDIR)/.tools/bin
export HIRES_TOOLS_DIR := $(TOOLS)

GO_TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: all tools cluster-tools cluster test-cluster build test unit lint run pay bank expire bench bench-cluster chaos chaos-cluster clean

all: build

## tools: build the pinned temporal CLI, stripe-mock, workflowcheck, mailpit, versitygw (S3) and promtool (alert rules) (the CLI takes ~7 min the first time, versitygw ~3)
tools: $(TOOLS)/temporal.$(TEMPORAL_CLI_VERSION) $(TOOLS)/stripe-mock.$(STRIPE_MOCK_VERSION) $(TOOLS)/workflowcheck.$(WORKFLOWCHECK_VERSION) $(TOOLS)/mailpit.$(MAILPIT_VERSION) $(TOOLS)/versitygw.$(VERSITYGW_VERSION) $(TOOLS)/promtool.$(PROMTOOL_VERSION)

## cluster-tools: build Temporal's server, its SQL schema tool (with the schemas it applies) and the standalone Web UI (~5 min the first time)
cluster-tools: $(TOOLS)/temporal-server.$(TEMPORAL_SERVER_VERSION) $(TOOLS)/temporal-ui-server.$(TEMPORAL_UI_VERSION)

# Each tool is stamped with its version, so a version bump rebuilds it.
$(TOOLS)/temporal.$(TEMPORAL_CLI_VERSION):
	GOBIN=$(TOOLS) go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)
	touch $@
$(TOOLS)/stripe-mock.$(STRIPE_MOCK_VERSION):
	GOBIN=$(TOOLS) go install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)
	touch $@
$(TOOLS)/workflowcheck.$(WORKFLOWCHECK_VERSION):
	GOBIN=$(TOOLS) go install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)
	touch $@
$(TOOLS)/mailpit.$(MAILPIT_VERSION):
	GOBIN=$(TOOLS) go install github.com/axllent/mailpit@$(MAILPIT_VERSION)
	touch $@
$(TOOLS)/versitygw.$(VERSITYGW_VERSION):
	GOBIN=$(TOOLS) go install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	touch $@
# The server and the UI's commands are both called "server": each builds in
# its own folder and is renamed. The schemas come from the same module.
$(TOOLS)/temporal-server.$(TEMPORAL_SERVER_VERSION):
	rm -rf $(TOOLS)/.temporal-server $(TOOLS)/temporal-schema
	GOBIN=$(TOOLS)/.temporal-server go install go.temporal.io/server/cmd/server@$(TEMPORAL_SERVER_VERSION) go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_SERVER_VERSION)
	mv $(TOOLS)/.temporal-server/server $(TOOLS)/temporal-server
	mv $(TOOLS)/.temporal-server/sql $(TOOLS)/temporal-sql-tool
	dir=$$(go mod download -json go.temporal.io/server@$(TEMPORAL_SERVER_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
	  test -d "$$dir/schema" && cp -R "$$dir/schema" $(TOOLS)/temporal-schema && chmod -R u+w $(TOOLS)/temporal-schema
	rm -rf $(TOOLS)/.temporal-server
	touch $@
$(TOOLS)/temporal-ui-server.$(TEMPORAL_UI_VERSION):
	rm -rf $(TOOLS)/.temporal-ui
	GOBIN=$(TOOLS)/.temporal-ui go install github.com/temporalio/ui-server/v2/cmd/server@$(TEMPORAL_UI_VERSION)
	mv $(TOOLS)/.temporal-ui/server $(TOOLS)/temporal-ui-server
	rm -rf $(TOOLS)/.temporal-ui
	touch $@
$(TOOLS)/promtool.$(PROMTOOL_VERSION):
	GOBIN=$(TOOLS) go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	touch $@

## build: compile the hires binary into bin/
build:
	go build -o bin/hires ./cmd/hires
	go build -o bin/upsampler-sim ./dev/cmd/upsampler-sim

## lint: gofmt, go vet and workflowcheck (determinism of workflow code)
lint: tools
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed on:"; gofmt -l .; exit 1)
	go vet ./...
	go vet -tags integration ./...
	$(TOOLS)/workflowcheck -show-pos ./workflows/...

## unit: unit tests only (no external services)
unit:
	go test $(GO_TEST_FLAGS) ./...

## test: lint, unit tests and integration tests against real PostgreSQL, Temporal and stripe-mock
test: tools lint
	go test $(GO_TEST_FLAGS) -tags integration ./...

## test-cluster: the end-to-end tests again, on Temporal's production shape (four roles on PostgreSQL) with results in S3
test-cluster: tools cluster-tools
	HIRES_E2E_TEMPORAL=cluster go test $(GO_TEST_FLAGS) -tags integration ./dev/e2e/

## run: the whole stack in the foreground (Ctrl-C stops it)
# run and cluster build the binary and run it, rather than `go run`: go run
# exits 1 when interrupted, so Ctrl-C would end in a make error.
run: tools
	go build -o bin/hires-dev ./dev/cmd/hires-dev
	bin/hires-dev run

## cluster: the production topology in the foreground: Temporal's four services on PostgreSQL with the standalone Web UI, an S3 store, two APIs behind a proxy and two workers
cluster: tools cluster-tools
	go build -o bin/hires-dev ./dev/cmd/hires-dev
	bin/hires-dev run -cluster

## pay JOB=<id>: simulate the customer paying (signed checkout.session.completed)
pay:
	@test -n "$(JOB)" || (echo "usage: make pay JOB=<job id>"; exit 2)
	go run ./dev/cmd/hires-dev pay $(JOB)

## bank JOB=<id> [RESULT=succeeded|failed]: simulate a bank debit: Checkout completed unpaid, then, with RESULT, Stripe's verdict
bank:
	@test -n "$(JOB)" || (echo "usage: make bank JOB=<job id> [RESULT=succeeded|failed]"; exit 2)
	go run ./dev/cmd/hires-dev $(if $(RESULT),bank-$(RESULT),pay-bank) $(JOB)

## expire JOB=<id>: simulate the Checkout Session expiring unpaid
expire:
	@test -n "$(JOB)" || (echo "usage: make expire JOB=<job id>"; exit 2)
	go run ./dev/cmd/hires-dev expire $(JOB)

## bench: measure the service on the real local stack; writes docs/bench/ (BENCH_FLAGS="-parked 2000" for a shorter run)
bench: tools
	go run ./dev/cmd/bench $(BENCH_FLAGS)

## bench-cluster: lifecycles/s and latencies on the Temporal dev server and on a Temporal cluster with 1, 2, 4 worker processes, then jobs parked on the cluster (10,000 and 100,000): database sizes, memory, latency; writes docs/bench/cluster.{json,md} (BENCH_FLAGS="-workers 1,2 -lifecycles 60 -parked 500,1000 -out /tmp/bench" for a quick run)
bench-cluster: tools cluster-tools
	go run ./dev/cmd/bench-cluster $(BENCH_FLAGS)

## chaos: hundreds of jobs under faults (worker SIGKILLs, restarts of the API, PostgreSQL and Temporal, a failing and slow Upsampler, duplicated and reordered Stripe events); fails if an invariant breaks
chaos: tools
	go run ./dev/cmd/chaos $(CHAOS_FLAGS)

## chaos-cluster: the same run on Temporal's production shape (four roles on the run's PostgreSQL), its history and matching processes SIGKILLed instead of a dev server restart
chaos-cluster: tools cluster-tools
	go run ./dev/cmd/chaos -cluster $(CHAOS_FLAGS)

clean:
	rm -rf bin
