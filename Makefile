# mailtick: `make demo` runs the main job, `make test` the tests.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export GOFLAGS := -buildvcs=false
# go.mod names the Go toolchain (go 1.27, for Telegraf 1.40); the machine's
# Go fetches it through the module proxy when allowed to switch.
export GOTOOLCHAIN := auto

GO_TEST_TIMEOUT ?= 40m

.PHONY: all build servers setup chromium postfix exim dist test test-short soak demo bench fuzz clean distclean

all: build

## build: bin/telegraf (stock Telegraf + our plugins), bin/mailtick (the
## operators' CLI) and bin/mailtick-dev (demo, bench, stack: a checkout's)
build:
	./scripts/build-telegraf.sh
	go build -o bin/mailtick ./cmd/mailtick
	go build -o bin/mailtick-dev ./cmd/mailtick-dev

## servers: nsqd, nsqlookupd, influxd, kapacitord, built once into .cache/servers
servers:
	./scripts/servers.sh

## setup: what the machine needs for the tests, installed once: Debian's
## Chromium (the test that renders the HTML report), Debian's Postfix (the
## MTA log tests run a real one) and systemd-journal-remote, Debian's Exim
## unpacked (the Exim queue's tests), and the servers
setup: servers chromium postfix exim

## chromium: Debian's Chromium, for the test that renders the HTML report
chromium:
	@command -v chromium >/dev/null || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -q && $$sudo apt-get install -y -q chromium; }

## postfix: Debian's Postfix (the tests start their own instances on
## loopback, with their own configuration: the system's is not used) and
## systemd-journal-remote (it writes the journal files the journal tests
## read with journalctl), and rpm (the package test reads the .rpm with it)
postfix:
	@[ -x /usr/sbin/postfix ] && [ -x /lib/systemd/systemd-journal-remote ] && command -v rpm >/dev/null || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix systemd-journal-remote rpm; }

## dist: the .deb and .rpm of the agent (mailtick-telegraf) and of the CLI
## (mailtick) into build/dist, versioned from VERSION and Telegraf's
## version (dist/, a module of its own: nfpm)
dist: build
	cd dist && go run . -root .. -out ../build/dist

## exim: Debian's Exim unpacked into .cache/exim (its package and
## Postfix's exclude each other), for the Exim queue's tests
exim:
	./scripts/exim.sh

## test: every test, integration tests against real servers included
test: setup build
	go vet ./...
	@rm -f build/soak-figures.txt
	go test -count=1 -timeout $(GO_TEST_TIMEOUT) ./...
	@cat build/soak-figures.txt

## soak: the week-in-the-life soak test of a DC alone (e2e/soak_test.go,
## about 12 minutes; `make test` runs it too)
soak: setup build
	go test -count=1 -timeout 20m -run TestWeekInTheLifeIntegration -v ./e2e/

## test-short: unit tests only (no servers)
test-short:
	go test -short ./...

## demo: start a local stack, run the agent on a generated stream, show what landed
demo: servers postfix build
	bin/mailtick-dev demo

## bench: stock Telegraf against ours, same events, same run; every figure
## also in bench.json (with the settings), to compare runs
bench: servers build
	go test -run XXX -bench . -benchmem ./plugins/parsers/mailevents/ ./plugins/common/mailevent/ ./plugins/common/bounce/ ./plugins/processors/mailclassify/ ./plugins/processors/piiscrub/ ./plugins/outputs/rollupfwd/ ./internal/pii/ ./plugins/common/maillog/
	go test -run TestOpenQueueIDMemory -v ./plugins/common/maillog/ | grep "bytes each"
	bin/mailtick-dev bench --json bench.json

## fuzz: a short fuzzing round of the parser (and its flat reader against
## fastjson), the detector (and its fast path for plain addresses), the
## redaction, piiscrub's IPv4 fast path against net/netip and the MTA log
## reader
fuzz:
	go test -run XXX -fuzz FuzzDecode -fuzztime 60s ./plugins/common/mailevent/
	go test -run XXX -fuzz FuzzFlat -fuzztime 60s ./plugins/common/mailevent/
	go test -run XXX -fuzz FuzzReplace -fuzztime 60s ./internal/pii/
	go test -run XXX -fuzz FuzzPlain -fuzztime 60s ./internal/pii/
	go test -run XXX -fuzz FuzzRedact -fuzztime 60s ./plugins/processors/piiscrub/
	go test -run XXX -fuzz FuzzIPPrefix -fuzztime 60s ./plugins/processors/piiscrub/
	go test -run XXX -fuzz FuzzLine -fuzztime 60s ./plugins/common/maillog/

## clean: removes what the build made: bin/ and build/ (the Telegraf copy)
clean:
	rm -rf bin build mailtick-demo.html

## distclean: clean, and removes the servers built into .cache/ too (the
## next build of them takes minutes)
distclean: clean
	rm -rf .cache
