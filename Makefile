# Everything runs in a project-local virtual environment that `make` creates and reuses.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# Telemetry of every dependency off, for every target.
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: help install demo demo-credit test test-fast test-docker certs lint format bench bench-ingest bench-stream bench-images clean constraints bench-quick wrk chromium

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[pipelines,dev]"
	@touch $(STAMP)

install: $(STAMP)  ## Create .venv and install the pinned stack (once)

demo: $(STAMP)  ## A year in production on the bike data (embedded defaults, state in ./.mlops)
	$(BIN)/mlops demo --use-case bike_demand

demo-credit: $(STAMP)  ## The same loop for the credit-default classifier
	$(BIN)/mlops demo --use-case credit_default --state-dir .mlops/credit

# The Docker tests need a container engine: tests/docker/engine.sh starts one when none answers
# (installing it, as root on Debian, when missing) and stops what it started, tests passed or not.
test: $(STAMP) chromium  ## All tests: unit, integration, end-to-end and the stack on a container engine
	@tests/docker/engine.sh up
	@status=0; $(BIN)/python -m pytest || status=$$?; tests/docker/engine.sh down; exit $$status

test-fast: $(STAMP)  ## The quick inner loop: everything but the slow end-to-end tests
	$(BIN)/python -m pytest -m "not slow"

test-docker: $(STAMP)  ## Only the stack on a container engine: images built, `docker compose up`, faults
	@tests/docker/engine.sh up
	@status=0; $(BIN)/python -m pytest -m docker || status=$$?; tests/docker/engine.sh down; exit $$status

# The gateway's TLS port (8443): a self-signed certificate for this machine, or your own with
# `make certs CERT=fullchain.pem KEY=privkey.pem`. The key stays out of the repository (.gitignore).
TLS := deploy/nginx/tls
certs:  ## A certificate for the gateway's TLS port: self-signed, or CERT=... KEY=... of your own
	@mkdir -p $(TLS)
	@if [ -n "$(CERT)" ]; then cp "$(CERT)" $(TLS)/cert.pem && cp "$(KEY)" $(TLS)/key.pem; \
	else openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
	  -addext "subjectAltName=DNS:localhost,DNS:gateway,IP:127.0.0.1" \
	  -keyout $(TLS)/key.pem -out $(TLS)/cert.pem 2>/dev/null; fi
	@chmod 600 $(TLS)/key.pem  # nginx reads it as root in its container; git never sees the folder
	@cp deploy/nginx/tls.conf $(TLS)/listen.conf
	@echo "TLS on https://127.0.0.1:8443 after 'docker compose up -d gateway' ($(TLS)/cert.pem to trust it)"

lint: $(STAMP)  ## ruff and the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The serving benchmark's load generator. Installed from Debian's packages when missing and
# possible (root with apt-get); otherwise the message says how.
wrk:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing wrk (Debian package) for the serving benchmark"; \
	    apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; \
	  else echo "the serving benchmark needs wrk: apt-get install wrk (Debian/Ubuntu) or brew install wrk (macOS)"; exit 1; fi; }

# The browser tests drive Debian's headless Chromium (the live rollout page); installed like wrk.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (Debian package) for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	  else echo "the browser tests need Chromium: apt-get install chromium (Debian/Ubuntu), or set MLOPS_CHROMIUM to a Chromium binary"; exit 1; fi; }

bench: $(STAMP) wrk  ## Every benchmark; results are appended to the results log of docs/performance.md
	$(BIN)/python -m benchmarks.serving
	$(BIN)/python -m benchmarks.pipeline --cluster --history 5000000
	$(BIN)/python -m benchmarks.demo_walltime
	$(BIN)/python -m benchmarks.stream

bench-ingest: $(STAMP)  ## Peak memory of ingesting 50 MB and 500 MB batches (about an hour on 2 cores)
	$(BIN)/python -m benchmarks.ingest_memory

bench-stream: $(STAMP)  ## The stream at four loads up to saturation (about a minute; needs Redis, MLOPS_STREAM_URL)
	$(BIN)/python -m benchmarks.stream

bench-images: $(STAMP)  ## Image sizes and container cold start (docker start -> /ready); needs an engine
	@tests/docker/engine.sh up
	@status=0; $(BIN)/python -m benchmarks.images || status=$$?; tests/docker/engine.sh down; exit $$status

bench-quick: $(STAMP) wrk  ## The serving goals in about two minutes: one JSON object of measured ratios (the first run installs the peers, MLServer and BentoML, into .venv-peers)
	$(BIN)/python -m benchmarks.serving --quick

constraints: $(STAMP)  ## Re-freeze the full constraints file from .venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:  ## Remove the state directory (keeps .venv)
	rm -rf .mlops
