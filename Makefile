# Pinned tools, built from the Go module proxy into .tools/bin (gitignored).
TEMPORAL_CLI_VERSION  := v1.5.1
STRIPE_MOCK_VERSION   := v0.203.0
WORKFLOWCHECK_VERSION := v0.6.0
MAILPIT_VERSION       := v1.33.1
VERSITYGW_VERSION     := v1.8.0
PROMTOOL_VERSION      := v0.316.0

TOOLS := $(CURDIR)/.tools/bin
export HIRES_TOOLS_DIR := $(TOOLS)

GO_TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: all tools build test unit lint run pay bank expire bench chaos clean

all: build

## tools: build the pinned temporal CLI, stripe-mock, workflowcheck, mailpit, versitygw (S3) and promtool (alert rules) (the CLI takes ~7 min the first time, versitygw ~3)
tools: $(TOOLS)/temporal.$(TEMPORAL_CLI_VERSION) $(TOOLS)/stripe-mock.$(STRIPE_MOCK_VERSION) $(TOOLS)/workflowcheck.$(WORKFLOWCHECK_VERSION) $(TOOLS)/mailpit.$(MAILPIT_VERSION) $(TOOLS)/versitygw.$(VERSITYGW_VERSION) $(TOOLS)/promtool.$(PROMTOOL_VERSION)

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
$(TOOLS)/promtool.$(PROMTOOL_VERSION):
	GOBIN=$(TOOLS) go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	touch $@

## build: compile the hires binary into bin/
build:
	go build -o bin/hires ./cmd/hires
	go build -o bin/upsampler-sim ./cmd/upsampler-sim

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

## run: the whole stack in the foreground (Ctrl-C stops it)
run: tools
	go run ./cmd/hires dev

## pay JOB=<id>: simulate the customer paying (signed checkout.session.completed)
pay:
	@test -n "$(JOB)" || (echo "usage: make pay JOB=<job id>"; exit 2)
	go run ./cmd/hires pay $(JOB)

## bank JOB=<id> [RESULT=succeeded|failed]: simulate a bank debit: Checkout completed unpaid, then, with RESULT, Stripe's verdict
bank:
	@test -n "$(JOB)" || (echo "usage: make bank JOB=<job id> [RESULT=succeeded|failed]"; exit 2)
	go run ./cmd/hires $(if $(RESULT),bank-$(RESULT),pay-bank) $(JOB)

## expire JOB=<id>: simulate the Checkout Session expiring unpaid
expire:
	@test -n "$(JOB)" || (echo "usage: make expire JOB=<job id>"; exit 2)
	go run ./cmd/hires expire $(JOB)

## bench: measure the service on the real local stack; writes docs/bench/ (BENCH_FLAGS="-parked 2000" for a shorter run)
bench: tools
	go run ./cmd/bench $(BENCH_FLAGS)

## chaos: hundreds of jobs under faults (worker SIGKILLs, restarts of the API, PostgreSQL and Temporal, a failing and slow Upsampler, duplicated and reordered Stripe events); fails if an invariant breaks
chaos: tools
	go run ./cmd/chaos $(CHAOS_FLAGS)

clean:
	rm -rf bin
