# Flowline's commands. `make dev` runs the whole stack; `make test` runs the suite.
# Both prepare the machine first (scripts/bootstrap.sh is idempotent and quick when done).

# pip --user installs uv into ~/.local/bin, which a fresh shell may not have on PATH.
export PATH := $(HOME)/.local/bin:$(PATH)

UV ?= uv
# Extra arguments, e.g. `make test ARGS="tests/unit -x"`.
ARGS ?=
# The suite runs in this many pytest-xdist workers, each with its own PostgreSQL and broker, a test file per
# worker at a time (its module fixtures stay together); most tests wait on I/O, so 3 fill 2 cores. 0: one process.
TEST_WORKERS ?= 3

.PHONY: bootstrap dev test lint bench clean

bootstrap:
	@scripts/bootstrap.sh

dev: bootstrap
	$(UV) run flowline-dev up $(ARGS)

test: bootstrap
	$(UV) run pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

lint: bootstrap
	$(UV) run ruff check .
	$(UV) run mypy

bench: bootstrap
	@if [ -f bench/__main__.py ]; then \
		$(UV) run python -m bench $(if $(PEERS),--peers $(PEERS)) $(ARGS); \
	else \
		echo "No benchmarks yet: bench/__main__.py does not exist."; \
	fi

clean:
	rm -rf .flowline
