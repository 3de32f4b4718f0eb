# make demo : set up, generate the synthetic corpus (medium; timit-sized on a GPU), run the whole recipe, print results
# make test : set up, run the test suite without the slow tests (what CI runs; a few minutes on 2 cores)
# make test-slow : set up, run only the slow tests: the whole tiny recipe, make demo's medium recipe (about 40 minutes on 2 cores) and other long tests
VENV    ?= .venv
PYTHON  ?= python3
SIZE    ?= auto
DEVICE  ?= auto
NGPU    ?= 1
RNN     ?= false
PY      := $(VENV)/bin/python
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps demo test test-slow bench clean-exp

setup: system-deps $(VENV)/.installed

system-deps:
	@if ! command -v flite >/dev/null || ! command -v sox >/dev/null; then \
	  echo "Installing Debian packages flite and sox"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq flite sox; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchaudio==2.11.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" recipes/synth/run.sh --size $(SIZE) --device $(DEVICE) --ngpu $(NGPU) --rnn-decoder $(RNN)

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) bench/per_synth.py

clean-exp:
	rm -rf exp/synth_* data/synth_*
