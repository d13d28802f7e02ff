# Everyday commands. Tools and build artefacts are cached outside the clone
# ($HOME/.cache/notify-platform), so fresh clones and CI reuse them.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/notify-platform/target

.PHONY: run stop test lint fmt stack-up stack-down bench docker up down

## run: install what is missing, start the stack, every service and Prometheus, print a first curl
run:
	bash deploy/local/run.sh

## stop: stop Prometheus, the services and the stack started by `make run`
stop:
	bash deploy/local/stop.sh

## test: the whole test suite against real servers (starts what it needs)
test:
	bash deploy/local/test.sh

## lint: formatting, clippy (warnings are errors), then cargo deny (advisories, licenses, bans,
## sources; deny.toml), cargo-deny installed first by deploy/local/install-cargo-deny.sh
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory deny

## deny: cargo deny against the offline advisory-database snapshot (../shared/advisory-db);
## ADVISORY_DB_FETCH=1 fetches the database instead (CI runners without the snapshot)
.PHONY: deny
deny:
	@set -e; deny="$$(bash deploy/local/install-cargo-deny.sh)"; \
	if [ "$${ADVISORY_DB_FETCH:-0}" = 1 ]; then \
	  "$$deny" deny fetch db && "$$deny" deny check --hide-inclusion-graph; \
	else \
	  cargo fetch --locked --quiet && "$$deny" deny --offline check --hide-inclusion-graph; \
	fi

fmt:
	cargo fmt --all

## dlt-list / replay-dlt: the dead letters of a channel on `make run`'s stack, and their replay
## (README, "Replaying dead letters"): make replay-dlt CHANNEL=email DLT_ARGS="--dry-run"
CHANNEL ?= email
DLT_ARGS ?=
.PHONY: dlt-list replay-dlt
dlt-list:
	cargo build -q -p notifyctl
	source deploy/local/env.sh && APP_KAFKA_BOOTSTRAP="$${APP_KAFKA_BOOTSTRAP:-$$KAFKA_BOOTSTRAP}" \
	  "$(CARGO_TARGET_DIR)/debug/notifyctl" dlt list --channel $(CHANNEL) $(DLT_ARGS)

replay-dlt:
	cargo build -q -p notifyctl
	source deploy/local/env.sh && APP_KAFKA_BOOTSTRAP="$${APP_KAFKA_BOOTSTRAP:-$$KAFKA_BOOTSTRAP}" \
	  "$(CARGO_TARGET_DIR)/debug/notifyctl" dlt replay --channel $(CHANNEL) $(DLT_ARGS)

stack-up:
	bash deploy/local/stack.sh up

stack-down:
	bash deploy/local/stack.sh down

## check-schemas: a scratch schema registry holding the base branch's contracts
## (SCHEMA_BASELINE_REF, default origin/main) at BACKWARD is asked whether each
## schemas/avro/*.avsc of this tree is compatible with the version registered before it;
## fails on an incompatible change, after proving on schemas/tests/fixtures/incompatible/ that
## it can fail. Against a live registry instead:
## SCHEMA_REGISTRY_URL=… cargo run -p notify-schemas --bin check-schemas
.PHONY: check-schemas
check-schemas:
	bash deploy/local/check-schemas-ci.sh

## check-deploy: validate the deployment files without a container engine or a cluster: the
## compose file against the Compose schema, its APP_* variables against the code, Prometheus
## config, alert rules and their unit tests, every dashboard/alert query; the GitHub workflows
## (actionlint) and the Dockerfile (hadolint); each Kubernetes overlay rendered, validated
## (Kubernetes, KEDA, External Secrets schemas) and policy-checked; every relative link of the
## docs. Each check also proves on a broken fixture that it can fail (--self-test).
.PHONY: check-deploy
check-deploy:
	@status=0; \
	bash deploy/check-compose.sh || status=1; \
	bash deploy/check-ci.sh --self-test || status=1; \
	bash deploy/check-ci.sh || status=1; \
	bash deploy/check-k8s.sh --self-test || status=1; \
	bash deploy/check-k8s.sh || status=1; \
	python3 deploy/check-env.py --self-test || status=1; \
	python3 deploy/check-env.py || status=1; \
	bash deploy/check-prometheus.sh || status=1; \
	python3 deploy/check-links.py --self-test || status=1; \
	python3 deploy/check-links.py || status=1; \
	if [ $$status -ne 0 ]; then echo "[check-deploy] FAILED (see above)" >&2; else echo "[check-deploy] all deployment checks passed"; fi; \
	exit $$status

## k8s-render / k8s-deploy / k8s-smoke: a Kubernetes overlay (deploy/k8s/overlays/$(OVERLAY))
## with the images of IMAGES (<service>=<repository>@sha256:<digest> per line) rendered, applied
## in order (config → deploy-step Jobs → services, waiting for each), and smoke-checked
## (SMOKE_TOKEN, SMOKE_USER_ID; deploy/k8s/smoke.sh). The release workflow runs these.
OVERLAY ?= staging
IMAGES ?= release-images.txt
.PHONY: k8s-render k8s-deploy k8s-smoke
k8s-render:
	bash deploy/k8s/release.sh render $(OVERLAY) $(IMAGES)

k8s-deploy:
	bash deploy/k8s/release.sh deploy $(OVERLAY) $(IMAGES)

k8s-smoke:
	bash deploy/k8s/release.sh smoke $(OVERLAY)

# Images: one per binary, all from deploy/docker/Dockerfile (SERVICE = binary, PORT = its port).
DOCKER_SERVICES := gateway:8080 outbox-relay:8090 user-svc:8082 template-svc:8083 \
	email-worker:8091 push-worker:8092 status-projector:8093 ingest:8094 register-schemas:8080
IMAGE_TAG ?= local

## docker: build every service's image (notify-platform/<service>:$(IMAGE_TAG))
docker:
	@set -e; for entry in $(DOCKER_SERVICES); do \
	  svc=$${entry%%:*}; port=$${entry##*:}; \
	  echo "[docker] building $$svc"; \
	  docker build -f deploy/docker/Dockerfile --build-arg SERVICE=$$svc --build-arg PORT=$$port \
	    -t notify-platform/$$svc:$(IMAGE_TAG) .; \
	done

## up: build and start the whole platform with Docker Compose (needs .env: cp .env.example .env)
up:
	@test -f .env || { echo "no .env: run 'cp .env.example .env' and set its secrets first" >&2; exit 1; }
	docker compose up -d --build

## down: stop and remove the compose stack (volumes are kept; add -v by hand to drop them)
down:
	docker compose down

## bench: release builds of what the benchmark runs, the local stack, then every scenario
## (gateway, relay, e2e, soak: under 15 minutes on 2 cores; the first release build takes
## longer) → tools/bench/results/<timestamp>.json, latest.json, latest.md, latency.png.
## Extra arguments: make bench BENCH_ARGS="--quick" (or "e2e --long", "gateway", …)
BENCH_ARGS ?=
bench:
	cargo build --release -p gateway -p ingest -p outbox-relay -p email-worker -p status-projector -p user-svc -p template-svc -p smtp-sink -p bench
	bash deploy/local/stack.sh up
	"$(CARGO_TARGET_DIR)/release/bench" $(if $(BENCH_ARGS),$(BENCH_ARGS),all)

## bench-report: render tools/bench/results/latest.json again as latest.md and latency.png
.PHONY: bench-report
bench-report:
	cargo build --release -p bench
	"$(CARGO_TARGET_DIR)/release/bench" report
