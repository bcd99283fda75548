# Warden — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed
CA := .local/tls/ca.pem

.PHONY: setup browser run token test lint typecheck layers tests bench clean

setup: $(STAMP_PY) $(STAMP_NPM) $(CA)

$(STAMP_PY): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CA): $(STAMP_PY)
	$(PY) -m tools.devca --out .local/tls

run: setup
	$(PY) -m tools.stack

# A bearer token for the admin API of the running `make run`, alone on stdout (ROLE=admin|reader):
#   curl -H "Authorization: Bearer $(make -s token)" http://127.0.0.1:7071/api/users
# No prerequisites, so that nothing but the token is ever printed.
token:
	@test -x $(PY) || { echo "$(PY) is missing: run \`make run\` first" >&2; exit 1; }
	@$(PY) -m tools.devtoken --role $(or $(ROLE),admin)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy shared/ functions/ tools/ function_app.py

layers: setup
	$(VENV)/bin/lint-imports --no-cache

# Lint, types and layers run beside the test suite (whose end-to-end tests mostly wait on their hosts), each
# target's output kept together; any failure fails `make test`. The slowest tests are listed at the end.
test: setup
	$(MAKE) --no-print-directory --output-sync=target -j4 lint typecheck layers tests

# The console's browser tests drive Debian's Chromium (Playwright cannot download its own browsers here): installed
# when it is missing and this runs as root with apt-get; otherwise `make test` stops here saying what to do.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get install -y -q chromium >/dev/null; } || { echo "make test needs Debian's chromium for the \
	console's browser tests: run \`apt-get install chromium\` as root" >&2; exit 1; }

tests: setup browser
	$(PY) -m pytest -q -p no:cacheprovider --durations=15

bench: setup
	$(PY) -m tools.bench

clean:
	rm -rf .local/azurite .local/m365sim .local/logs
