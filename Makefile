# Strategos — `make run` runs the default goal on the embedded model; `make test` runs the suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
PYTHON312 := $(shell for p in $$HOME/.pyenv/versions/3.12*/bin/python3.12 $$(command -v python3.12); do \
	[ -x "$$p" ] && "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -c1-12)
GOAL ?= Write a function slugify(title: str) -> str that lowercases the title, turns every run of characters other than ASCII letters and digits into a single hyphen, and strips hyphens from both ends. Examples: slugify("Hello, World!") == "hello-world", slugify("  LangGraph -- 101  ") == "langgraph-101", slugify("") == ""
APPROVE ?= $(shell [ -t 0 ] && echo ask || echo auto)
OUT ?= out

export GOAL
export LANGGRAPH_CLI_NO_ANALYTICS := 1
export LANGGRAPH_NO_VERSION_CHECK := true

.PHONY: help run test setup system-deps services model lint lock clean

help:
	@echo "make run    - run the team on the default goal with the embedded local model"
	@echo "make test   - the whole test suite (starts what it needs)"
	@echo "make lint   - ruff and mypy --strict"

run: setup model
	$(BIN)/strategos run "$$GOAL" --approve $(APPROVE) --out $(OUT)

test: setup services model
	$(BIN)/python -m pytest -q -ra --durations=25 tests

setup: system-deps $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@if [ -z "$(PYTHON312)" ]; then \
		echo "error: Python 3.12 not found (looked in ~/.pyenv/versions/3.12*/ and on PATH)." >&2; \
		echo "       install it (e.g. 'pyenv install 3.12') and run make again." >&2; exit 1; fi
	@[ -x $(BIN)/python ] || $(PYTHON312) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

system-deps:
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v runsc >/dev/null || missing="$$missing runsc"; \
	command -v cmake >/dev/null || missing="$$missing cmake"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	[ -x /usr/bin/python3 ] || missing="$$missing python3"; \
	/usr/bin/python3 -c 'import pytest' 2>/dev/null || missing="$$missing python3-pytest"; \
	command -v prlimit >/dev/null || missing="$$missing util-linux"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

services:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { echo "starting PostgreSQL"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; }
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { echo "starting Redis"; \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; }

model: setup
	$(BIN)/strategos prepare

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^strategos' > constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache out
