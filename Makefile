# Everyday commands. Tools and build artefacts are cached outside the clone
# ($HOME/.cache/notify-platform), so fresh clones and CI reuse them.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/notify-platform/target

.PHONY: run stop test lint fmt stack-up stack-down bench docker up down

## run: install what is missing, start the stack and every service, print a first curl
run:
	bash deploy/local/run.sh

## stop: stop the services and the stack started by `make run`
stop:
	bash deploy/local/stop.sh

## test: the whole test suite against real servers (starts what it needs)
test:
	bash deploy/local/test.sh

## lint: formatting and clippy, warnings are errors
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

stack-up:
	bash deploy/local/stack.sh up

stack-down:
	bash deploy/local/stack.sh down
