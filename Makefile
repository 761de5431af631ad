# Flowline's commands. `make dev` runs the whole stack; `make test` runs the suite.
# Both prepare the machine first (scripts/bootstrap.sh is idempotent and quick when done).

# pip --user installs uv into ~/.local/bin, which a fresh shell may not have on PATH.
export PATH := $(HOME)/.local/bin:$(PATH)

UV ?= uv
# Extra arguments, e.g. `make test ARGS="tests/unit -x"`.
ARGS ?=

.PHONY: bootstrap dev test lint bench clean

bootstrap:
	@scripts/bootstrap.sh

dev: bootstrap
	$(UV) run flowline-dev up $(ARGS)

test: bootstrap
	$(UV) run pytest $(ARGS)

lint: bootstrap
	$(UV) run ruff check .
	$(UV) run mypy

bench: bootstrap
	@if [ -f bench/__main__.py ]; then \
		$(UV) run python -m bench $(ARGS); \
	else \
		echo "No benchmarks yet: bench/__main__.py does not exist."; \
	fi

clean:
	rm -rf .flowline
