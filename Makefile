# Fresh machine: `make train` or `make test` creates .venv from requirements.txt first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/g2p-small
EXPORT_BASE ?= saved_models/g2p
# The LSTM training loop's fused kernels, compiled against the installed TensorFlow: the
# per-step ops, the bf16 whole-sequence ops that load only on CPUs with AMX tiles or
# AVX-512-BF16, and the float32 ones that run on CPUs with AVX2 and FMA.
STEP_KERNELS := s2s_keras/layers/_lstm_kernels.so
SEQUENCE_KERNELS := s2s_keras/layers/_lstm_sequence.so
FLOAT_SEQUENCE_KERNELS := s2s_keras/layers/_lstm_sequence_float.so
KERNELS := $(STEP_KERNELS) $(SEQUENCE_KERNELS) $(FLOAT_SEQUENCE_KERNELS)
# Every library counts as stale when one of these is newer (lstm_kernels._stale).
SEQUENCE_HEADERS := s2s_keras/layers/lstm_rows.h s2s_keras/layers/lstm_sequence.h \
	s2s_keras/layers/lstm_fma.h s2s_keras/layers/lstm_greedy.h s2s_keras/layers/lstm_beam.h

.PHONY: install train test lint format docs clean

install: $(STAMP) $(KERNELS)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --no-deps -e .
	touch $(STAMP)

$(STEP_KERNELS): s2s_keras/layers/lstm_kernels.cc $(SEQUENCE_HEADERS) $(STAMP)
	$(BIN)/python -c 'from s2s_keras.layers import lstm_kernels; lstm_kernels.build("$@")'

$(SEQUENCE_KERNELS): s2s_keras/layers/lstm_sequence.cc $(SEQUENCE_HEADERS) $(STAMP)
	$(BIN)/python -c 'from s2s_keras.layers import lstm_kernels as k; k.build("$@", k.SEQUENCE_SOURCE)'

$(FLOAT_SEQUENCE_KERNELS): s2s_keras/layers/lstm_sequence_float.cc $(SEQUENCE_HEADERS) $(STAMP)
	$(BIN)/python -c 'from s2s_keras.layers import lstm_kernels as k; k.build("$@", k.FLOAT_SEQUENCE_SOURCE)'

# Train the default G2P model on the embedded CMUdict, evaluate on the test split, export, predict.
train: $(STAMP) $(KERNELS)
	$(BIN)/s2s train --data cmudict --preset small --run-dir $(RUN_DIR)
	$(BIN)/s2s evaluate --run-dir $(RUN_DIR) --split test
	$(BIN)/s2s export --run-dir $(RUN_DIR) --export-base $(EXPORT_BASE)
	$(BIN)/s2s predict --model $(RUN_DIR) hello world keras tensorflow pronunciation

test: $(STAMP) $(KERNELS)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=15 tests

# ruff: lint rules and the formatter (line length 100), configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# docs/results.md and the README's results table, from benchmarks/results/ (a test checks them).
docs:
	$(PYTHON) benchmarks/results_tables.py

clean:
	rm -rf $(VENV) runs
