# stageswap — the two commands a new machine needs:
#   make demo   set everything up and start the live service (a clip as camera) on the embedded default
#   make test   set everything up and run the default test suite
# Everything lands in .venv; nothing but Python is needed beforehand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SHARED ?= $(abspath ../shared)
export STAGESWAP_SHARED ?= $(SHARED)
# Tests, CI and the demo read the shared models when they are there; elsewhere the registry fetches them.
ifneq ($(wildcard $(SHARED)/models),)
export STAGESWAP_MODELS ?= $(SHARED)/models
endif
DEMO_INPUT    ?= $(firstword $(wildcard $(SHARED)/data/clips/d3.mp4))
DEMO_IDENTITY ?= $(firstword $(wildcard $(SHARED)/data/faces/s1.jpg))
DEMO_PORT     ?= 8080
DEMO_DATA     ?= out/demo-data
PYTEST_ARGS ?=

.PHONY: setup lock test-latest test test-slow test-gpu test-all bytecode demo bench bench-gpu eval lint typecheck clean browser-setup gstreamer-setup whep-player-setup janus-setup soak

setup: $(VENV)/.installed

# The exact, hash-checked versions the project is tested with (pip-compile's locks, see README "Install"):
# CUDA machines (an NVIDIA GPU answers nvidia-smi) take requirements/cuda.txt, every other one
# requirements/cpu.txt, whose torch is the CPU build. `make lock` refreshes both; `make test-latest` tries
# the newest versions pyproject.toml's ranges allow, in a venv of its own.
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
LOCK ?= requirements/$(if $(HAS_CUDA),cuda,cpu).txt
# test-latest's torch: any 2.x on a CUDA machine; on a CPU machine the CPU wheel, held there while the rest
# upgrades (PyPI's newer torch would bring gigabytes of CUDA packages).
# (A variable, because a comma inside $(if ...) splits its arguments.)
LATEST_TORCH_CUDA := torch>=2.4,<3
LATEST_TORCH := $(if $(HAS_CUDA),$(LATEST_TORCH_CUDA),torch==2.13.0)

# The installer is uv (requirements/bootstrap.txt: its version and wheels' hashes), outside the project's venv:
# it installs the same hashed lock as pip in a few seconds of CPU, from its cache or in parallel downloads, where
# pip took ~35 s (BENCHMARKS.md, "Test suite"). uv reads neither pip's configuration nor its variables, so it is
# given pip's find-links (PIP_FIND_LINKS, else pip's configuration: the local folder torch's CPU build is in) and
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, and takes each pinned file from whichever of them has it, as pip does
# (the hashes decide what installs). Where uv cannot be installed or fails, pip installs the lock, as before.
UV := $(VENV)/bootstrap/bin/uv
UV_FIND_LINKS_FROM_PIP = $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
UV_SOURCES = --index-strategy unsafe-best-match $(foreach l,$(UV_FIND_LINKS_FROM_PIP),--find-links $(l)) \
  $(if $(PIP_INDEX_URL),--index-url $(PIP_INDEX_URL)) $(foreach u,$(PIP_EXTRA_INDEX_URL),--extra-index-url $(u))
$(VENV)/.installed: pyproject.toml $(LOCK) requirements/bootstrap.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	@if ! $(BIN)/pip install --quiet --require-hashes --no-deps --target $(VENV)/bootstrap -r requirements/bootstrap.txt; then \
	  echo "setup: uv (requirements/bootstrap.txt) could not be installed; installing $(LOCK) with pip (slower)"; \
	  $(BIN)/pip install --quiet --require-hashes --no-deps --no-compile -r $(LOCK); \
	elif ! $(UV) pip install --quiet --python $(BIN)/python --require-hashes --no-deps $(UV_SOURCES) -r $(LOCK); then \
	  echo "setup: uv could not install $(LOCK) (above); installing it with pip (slower)"; \
	  $(BIN)/pip install --quiet --require-hashes --no-deps --no-compile -r $(LOCK); \
	else echo "setup: $(LOCK) installed with $$($(UV) --version)"; fi
	@# The bytecode pip would compile on one core (half of the install's CPU), compiled on all of them. Torch
	@# ships a test helper only Python 3.12 can compile; pip leaves such files alone silently, and so does this.
	@$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python tools/lockcheck.py $(LOCK)
	@# The CPU path's compiled kernels (engines.fused, engines.swap.fused, engines.light.fused), compiled once into
	@# numba's disk cache: not by every test process. They compile side by side (numba compiles each on one core,
	@# into its own cache files); any that fails fails the set-up.
	@pids=; for m in engines.fused engines.swap.fused engines.light.fused; do \
	  $(BIN)/python -c "from $$m import warm_up; print(f'$$m: kernels ready in {warm_up():.1f} s')" & pids="$$pids $$!"; \
	done; rc=0; for p in $$pids; do wait $$p || rc=1; done; exit $$rc
	@touch $@

# Refresh the locks to the newest versions the ranges allow (pip-tools, pinned below; minutes: it asks
# PyPI for every file's hash). The CPU lock's torch is the CPU build from TORCH_CPU_WHEELS (a folder or
# an index page: https://download.pytorch.org/whl/cpu/torch/), the CUDA lock's PyPI's own build.
TORCH_CPU_WHEELS ?= /opt/wheels
PIP_TOOLS := .venv-lock/bin
LOCK_ARGS ?= --upgrade
LOCK_ENV := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null
PIP_COMPILE = $(LOCK_ENV) $(PIP_TOOLS)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
  --extra dev --index-url https://pypi.org/simple --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)
lock:
	@test -x $(PIP_TOOLS)/pip-compile || { $(PYTHON) -m venv .venv-lock && \
	  $(PIP_TOOLS)/pip install --quiet 'pip-tools==7.7.0' 'pip==26.3'; }
	$(PIP_COMPILE) --find-links $(TORCH_CPU_WHEELS) -o requirements/cpu.txt pyproject.toml requirements/cpu.in
	$(PIP_COMPILE) -o requirements/cuda.txt pyproject.toml requirements/cuda.in
	@echo "lock: requirements/cpu.txt and requirements/cuda.txt refreshed; make setup installs them"

# The suite against the newest versions pyproject.toml allows (torch stays the CPU build 2.13.0 here), in
# .venv-latest: says which packages moved past the lock and whether the suite passed. Upgrading is then a
# decision: make lock, make test, commit the locks.
LATEST := .venv-latest
test-latest: browser-setup janus-setup
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip
	$(LATEST)/bin/pip install --quiet '$(LATEST_TORCH)'
	echo '$(LATEST_TORCH)' > $(LATEST)/torch-held.txt
	$(LATEST)/bin/pip install --quiet --upgrade --upgrade-strategy eager $(if $(HAS_CUDA),,-c $(LATEST)/torch-held.txt) -e '.[dev]'
	@echo "test-latest: against $(LOCK), $(LATEST) holds:"
	@$(LATEST)/bin/python tools/lockcheck.py $(LOCK) --report
	@$(LATEST)/bin/python -m pytest -m "not slow and not gpu" -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 0 ]; then echo "test-latest: the suite PASSED with the versions above"; \
	  else echo "test-latest: the suite FAILED (exit $$rc) with the versions above: keep the lock, or fix and make lock"; fi; \
	  exit $$rc

# The browser tests drive Debian's chromium (never a Playwright-downloaded browser). Fast when it is there;
# without root or sudo it says so, and the browser tests skip with that reason.
browser-setup:
	@command -v chromium >/dev/null 2>&1 && exit 0; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "browser-setup: chromium is missing and there is no apt-get here; install chromium yourself, or the browser tests skip" >&2; exit 0; \
	elif [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "browser-setup: chromium is missing and installing it needs root (apt-get install -y chromium); the browser tests skip" >&2; exit 0; fi; \
	echo "browser-setup: installing chromium for the browser tests (apt-get)"; \
	{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } \
	  || echo "browser-setup: installing chromium failed; the browser tests skip" >&2

# A third WebRTC stack for the publisher tests: GStreamer's webrtcbin, driven by the system Python's GObject
# bindings (Debian's packages). Fast when it is there; without root or sudo it says so and those tests skip.
GST_PACKAGES := python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
  gstreamer1.0-nice gstreamer1.0-libav
GST_CHECK := /usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0"); from gi.repository import Gst; \
  Gst.init(None); import sys; sys.exit(0 if all(Gst.ElementFactory.find(e) for e in ("webrtcbin", "nicesrc", \
  "x264enc", "opusenc", "decodebin")) else 1)'
gstreamer-setup:
	@$(GST_CHECK) 2>/dev/null && exit 0; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "gstreamer-setup: GStreamer's webrtcbin is missing and there is no apt-get here; the GStreamer publisher tests skip" >&2; exit 0; \
	elif [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "gstreamer-setup: installing GStreamer needs root (apt-get install -y $(GST_PACKAGES)); the GStreamer publisher tests skip" >&2; exit 0; fi; \
	echo "gstreamer-setup: installing GStreamer's webrtcbin for the publisher tests (apt-get)"; \
	{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(GST_PACKAGES) >/dev/null; } \
	  || echo "gstreamer-setup: installing GStreamer failed; the GStreamer publisher tests skip" >&2

# A WHEP player nobody here wrote, for the browser test: medooze's whip-whep from npm, into an ignored folder
# (loaded by the test as a file; never copied into client/). Without npm or the registry the test skips.
WHEP_PLAYER := whip-whep@1.2.0
WHEP_PLAYER_DIR := .npm-whep
whep-player-setup:
	@test -f $(WHEP_PLAYER_DIR)/node_modules/whip-whep/whep.js && exit 0; \
	if ! command -v npm >/dev/null 2>&1; then \
	  echo "whep-player-setup: npm is missing; the npm WHEP player's browser test skips" >&2; exit 0; fi; \
	echo "whep-player-setup: fetching $(WHEP_PLAYER) with npm into $(WHEP_PLAYER_DIR)/"; \
	npm install --silent --no-save --no-audit --no-fund --prefix $(WHEP_PLAYER_DIR) $(WHEP_PLAYER) >/dev/null \
	  || echo "whep-player-setup: npm could not fetch $(WHEP_PLAYER); the npm WHEP player's browser test skips" >&2

# The SFU tests start Debian's Janus (1.1) on loopback ports with a generated config, and the monitor page
# plays through Janus with Janus's own JS client from npm (janus-gateway and the webrtc-adapter it needs,
# checked against vendor/package-lock.json, installed into the ignored vendor/node_modules and served by the
# server as files, never copied into client/). Like browser-setup: janus is installed with apt-get when it
# is missing (as root, or with sudo); without it, or without npm, it says so and those tests skip.
janus-setup:
	@if ! command -v janus >/dev/null 2>&1; then \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "janus-setup: janus is missing and there is no apt-get here; install janus 1.1 yourself, or the SFU tests skip" >&2; \
	  elif [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "janus-setup: janus is missing and installing it needs root (apt-get install -y janus); the SFU tests skip" >&2; SUDO=none; fi; \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$SUDO" != none ]; then \
	    echo "janus-setup: installing janus for the SFU tests (apt-get)"; \
	    { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq janus >/dev/null; } \
	      || echo "janus-setup: installing janus failed; the SFU tests skip" >&2; \
	  fi; \
	fi
	@if [ -f vendor/node_modules/.package-lock.json ] && [ vendor/node_modules/.package-lock.json -nt vendor/package-lock.json ]; then exit 0; fi; \
	if ! command -v npm >/dev/null 2>&1; then \
	  echo "janus-setup: npm is missing: Janus's JS client is not installed, the monitor page cannot play through Janus" >&2; exit 0; fi; \
	npm ci --prefix vendor --ignore-scripts --no-audit --no-fund --silent \
	  || echo "janus-setup: npm ci failed: the monitor page cannot play through Janus" >&2

# The default suite runs on PYTEST_WORKERS processes (pytest-xdist, --dist loadfile: a file's tests and its
# module fixtures stay in one process). Many tests wait on a server, a browser or an encoder rather than
# compute, so 4 workers keep 2 cores busy; PYTEST_WORKERS=0 runs everything in this process (one test's
# output in order, a debugger). Files go to the workers in collection order, the longest first
# (tests/conftest.py, WALL_S), not xdist's order by number of tests.
PYTEST_WORKERS ?= 4
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder)
# pytest exits 5 when it collects nothing: that is a failure here, with a message, never a pass.
test: setup browser-setup gstreamer-setup whep-player-setup janus-setup bytecode
	@$(PYTEST) -m "not slow and not gpu" $(XDIST) $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-slow: setup bytecode
	$(PYTEST) -m "slow and not gpu" $(PYTEST_ARGS)

test-gpu: setup bytecode
	$(PYTEST) -m gpu $(PYTEST_ARGS)

test-all: setup bytecode
	$(PYTEST) $(PYTEST_ARGS)

# Bytecode caches for the test runs, even where PYTHONDONTWRITEBYTECODE is set (CI images and this project's
# shells set it): the suite runs its workers and dozens of servers and commands as Python processes, and
# without caches each compiles the packages it imports again and each worker rewrites every test module's
# asserts again — about 4 s of CPU more per worker collecting the suite and 0.6 s per server started
# (BENCHMARKS.md, "Start-up cost"). The packages are compiled once, on both cores, before the run (only what
# changed since the last run); pytest may keep its rewritten test modules. Both live in the ignored
# __pycache__ folders.
PYTEST = PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest
bytecode: setup
	@$(BIN)/python -m compileall -q -j 0 engines streamer tests benchmarks build_engines.py tools
	@# pytest's rewritten test modules and plugins, once on every core (not by each worker: tools/rewrite_asserts.py).
	@$(BIN)/python tools/rewrite_asserts.py tests

# The live service with the embedded engines; it prints the URL to open and runs until Ctrl-C. DEMO_INPUT
# (a clip) plays as camera "demo"; DEMO_IDENTITY (a photo, enrolled unverified: no consent record, and
# marked so on the page; or an enrolled name) is swapped in and relit — by default a shared photo. With
# DEMO_IDENTITY= (empty) the tracked mesh is drawn instead. Identities and recordings go to DEMO_DATA.
demo: setup
	$(BIN)/stageswap models fetch
	@mkdir -p $(DEMO_DATA)
	@echo "demo: camera 'demo' = $(or $(DEMO_INPUT),none); $(if $(DEMO_IDENTITY),swapping in $(DEMO_IDENTITY) (unverified),mesh overlay only)"
	$(BIN)/stageswap serve --port $(DEMO_PORT) --data-dir "$(DEMO_DATA)" \
	  $(if $(DEMO_INPUT),--input demo="$(DEMO_INPUT)") \
	  $(if $(DEMO_IDENTITY),--identity "$(DEMO_IDENTITY)" --unverified,--debug-overlay)

bench: setup
	$(BIN)/python benchmarks/bench_tracking.py

# Per-frame processing on the GPU (1080p 1 and 4 faces, 4K 1 face) with a same-run CPU baseline; needs CUDA.
# BENCH_GPU_ARGS="--swap-model NAME --data-dir DIR" swaps with a registered model (e.g. one stageswap train made).
BENCH_GPU_ARGS ?=
bench-gpu: setup
	$(BIN)/python benchmarks/bench_gpu.py $(BENCH_GPU_ARGS)

# 10 minutes of publish + process (identity swapped in) + two viewers + recording at 480p; RSS growth, latency
# drift, file descriptors and threads (issue 8; not part of the tests). SOAK_ARGS="--duration 1800" for longer.
SOAK_ARGS ?=
soak: setup
	@mkdir -p out
	$(BIN)/python benchmarks/soak.py --json out/soak.json $(SOAK_ARGS)

# Swap and relighting quality (identity, expression, flicker, relighting ground truth); PNGs in out/eval.
eval: setup
	$(BIN)/python -m benchmarks.eval_relight_synthetic
	$(BIN)/python -m benchmarks.eval_quality

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy engines streamer build_engines.py

clean:
	rm -rf $(VENV) .venv-latest .venv-lock out .pytest_cache .mypy_cache .ruff_cache $(WHEP_PLAYER_DIR) vendor/node_modules
