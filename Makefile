# The two commands a newcomer needs are `make demo` and `make test` (see README).
PYTHON ?= python3

.PHONY: install demo test test-fast test-server lint servers sanitize

# The editable install writes no bytecode, and where PYTHONDONTWRITEBYTECODE is set (as in many
# containers) Python would compile the package's ~30 modules at every command: 60-80 ms before
# `logs index` starts reading. compileall writes them once (into __pycache__, not tracked).
install:
	$(PYTHON) -m pip install -q -e '.[test]'
	$(PYTHON) -m compileall -q src

demo: install
	mailwarden trace samples/ --summary

servers:
	bash scripts/install-test-servers.sh

# Everything: installs the real servers (as root), the package, lints, then runs the whole suite.
test: servers install
	$(PYTHON) -m ruff check src tests bench
	MAILWARDEN_REQUIRE_PFSCAN=1 $(PYTHON) -m pytest -q

test-fast: install
	$(PYTHON) -m pytest -q -m "not server and not slow"

test-server: servers install
	$(PYTHON) -m pytest -q -m server

lint:
	ruff check src tests bench

# The compiled Postfix scanner's tests under AddressSanitizer + UBSan (gcc; not part of `make test`),
# for its SSE2 code and for the portable code other machines (aarch64) run.
sanitize: install
	bash scripts/pfscan-sanitizers.sh
	PFSCAN_EXTRA_CFLAGS=-U__SSE2__ bash scripts/pfscan-sanitizers.sh
