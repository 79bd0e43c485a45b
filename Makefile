# skelrecall: `make help` lists the targets. Every target that needs the environment depends on
# `install`, so `make reproduce` and `make test` each work as the first command on a fresh machine.
# Outputs (data/, runs/, reports/) go to the current folder, so `make -f <checkout>/Makefile -C <dir> ...`
# works from anywhere; the environment is the checkout's .venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT          := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PYTHON        ?= python3
VENV          ?= $(ROOT)/.venv
PROFILE       ?= cpu
TORCH_VERSION ?= 2.13.0
EXTRAS        ?= dev,hrnet,topology
BIN           := $(VENV)/bin
comma         := ,
STAMP         := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# topolosses (topology extra) is installed without its declared dependencies (torchvision, a CUDA torch)
PIP_EXTRAS    := $(subst $(eval) ,$(comma),$(filter-out topology,$(subst $(comma), ,$(EXTRAS))))

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: PROFILE=$(PROFILE) (smoke|cpu|cpu_real|paper)  LAUNCHER=(parallel|local|slurm|basic)  ARGS=(extra arguments)"
	@echo "             EXTRAS=$(EXTRAS)  TORCH_VERSION=$(TORCH_VERSION)"

$(STAMP): $(ROOT)/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# No CUDA here: put the CPU build of torch in first, or `torch>=2.1` would pull a multi-GB CUDA build.
	@if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "no GPU found: installing torch==$(TORCH_VERSION) (CPU)"; \
		$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"; fi
	$(BIN)/python -m pip install --quiet -e "$(ROOT)[$(PIP_EXTRAS)]"
	@if [[ ",$(EXTRAS)," == *",topology,"* ]]; then \
		$(BIN)/python -m pip install --quiet --no-deps "topolosses==0.2.0" && $(BIN)/python -m pip install --quiet "cripser>=0.0.37"; fi
	@touch $@

install: $(STAMP) ## create .venv and install the package with EXTRAS (idempotent)

test: install ## run the whole test suite (about 10 minutes on 2 cores)
	cd $(ROOT) && $(BIN)/python -m pytest -q

test-fast: install ## the fast tier for the inner loop (about a minute): everything but end-to-end runs
	cd $(ROOT) && $(BIN)/python -m pytest -q -m "not slow"

lint: install ## ruff: lint and format check (what CI runs)
	$(BIN)/ruff check $(ROOT)/src $(ROOT)/tests
	$(BIN)/ruff format --check $(ROOT)/src $(ROOT)/tests

format: install ## ruff: fix what can be fixed and format the code
	$(BIN)/ruff check --fix $(ROOT)/src $(ROOT)/tests
	$(BIN)/ruff format $(ROOT)/src $(ROOT)/tests

data: install ## make a dataset: DATASET=synthetic_2d, or DATASET=drive RAW=/path/to/download [OUT=dir]
	@if [ -n "$(RAW)" ]; then $(BIN)/skelrecall-data convert $(DATASET) --raw "$(RAW)"$(if $(OUT), --out "$(OUT)"); \
	else $(BIN)/skelrecall-data synthesize $(or $(DATASET),synthetic_2d)$(if $(OUT), --out "$(OUT)"); fi

train: install ## one run: make train ARGS="dataset=synthetic_2d loss=skeleton_recall loss.w=0.1"
	$(BIN)/skelrecall-train profile=$(PROFILE) $(ARGS)

sweep: install ## Hydra multirun: make sweep ARGS="loss=dice_ce,skeleton_recall loss.w=0.1,1.0"
	$(BIN)/skelrecall-train --multirun profile=$(PROFILE) $(ARGS)

predict: install ## label maps of new images: make predict RUN="run_dir [run_dir ...]" IN=folder|DATASET_FOLDER:Ts OUT=dir
	$(BIN)/skelrecall-predict -i "$(IN)" -o "$(OUT)" $(foreach r,$(RUN),--run "$(r)") $(ARGS)

evaluate: install ## score a folder: make evaluate PRED=dir LABELS=dir [DATASET_JSON=file]
	$(BIN)/skelrecall-evaluate --pred "$(PRED)" --labels "$(LABELS)" $(if $(DATASET_JSON),--dataset-json "$(DATASET_JSON)")

report: install ## tables 2/3 and figures from the finished runs of PROFILE (reports/$(PROFILE)/tables, figures)
	$(BIN)/skelrecall-report --profile $(PROFILE)

reproduce: install ## every paper table and figure: PROFILE=cpu (synthetic, 2 cores) | cpu_real (real DRIVE) | smoke (minutes) | paper (GPUs)
	$(BIN)/skelrecall-reproduce --profile $(PROFILE) $(if $(LAUNCHER),--launcher $(LAUNCHER)) $(ARGS)

bench: install ## resource benchmarks into reports/bench (ratios measured in one run); ARGS=--quick for a fast check
	$(BIN)/skelrecall-bench all $(ARGS)

check-paper: install ## slow, not in CI: every experiment with profile=paper trains 2 steps, predicts one case (reports/bench/paper_check.md)
	$(BIN)/python -m skelrecall.bench.paper_check $(ARGS)

gpu-check: install ## on a CUDA machine: paper-size steps/s, GPU memory, Skeleton Recall's overhead (reports/bench/gpu.md)
	$(BIN)/python -m skelrecall.bench.gpu_check $(ARGS)

clean: ## remove run folders and caches (keeps data/ and .venv)
	rm -rf runs outputs multirun .pytest_cache
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +

.PHONY: help install test test-fast lint format data train sweep predict evaluate report reproduce bench check-paper gpu-check clean
