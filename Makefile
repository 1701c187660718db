# reconad — the two Quick-start commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# Demo settings: the embedded texture data (brick, grass, gravel) in MVTec layout.
DEMO_DATA ?= demo-data/textures
DEMO_RUNS ?= runs/demo

.PHONY: setup demo test bench clean

setup: $(VENV)/.stamp-setup

# torch is pinned to the CPU build that this machine carries; users elsewhere may use
# any torch >= 2.2 (pyproject declares the range).
$(VENV)/.stamp-setup: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(PY) -m reconad.demo --data $(DEMO_DATA) --out $(DEMO_RUNS)

test: setup
	$(PY) -m pytest -q

# Heavy benchmarks (never part of `make test`).  Results are written under runs/bench-*;
# nothing is copied into BENCHMARKS.md automatically.
MT_ROOT ?= ../shared/data/magnetic-tile
bench: setup
	$(PY) -m reconad benchmark --protocol localization --dataset textures --root $(DEMO_DATA) --out runs/bench-textures --quiet
	$(PY) -m reconad benchmark --protocol localization --dataset magnetic-tile --root $(MT_ROOT) --out runs/bench-magnetic-tile --quiet \
		--set 'layers=[3,4,5]' --set bottleneck_pool=2
	$(PY) -m reconad benchmark --protocol speed --model hfr --image-size 256 --out runs/bench-speed --quiet

clean:
	rm -rf $(VENV) runs demo-data
