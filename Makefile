# mlcore: the two quick-start commands are `make run` and `make test`.
# Both create the virtual environment (.venv) when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# tests never touch the project's own MLflow store
TEST_TMP := $(CURDIR)/.tmp/test

.PHONY: help venv run test test-notebooks test-py lint sync readme check-java ui lab clean

help:
	@echo "make run    - set up, then train the credit PD model on the bundled data (MLflow run + registered model)"
	@echo "make test   - set up, then run every notebook (nbdev_test), the sync check and pytest"
	@echo "make ui     - open the MLflow UI on http://127.0.0.1:5000"
	@echo "make sync   - nbdev_export + nbdev_clean after editing notebooks"
	@echo "make readme - regenerate README.md from nbs/index.ipynb"
	@echo "make lint   - ruff over mlcore/ (correctness, unused imports, asserts, line length), tests/, notebooks, tools/, bench/"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mlcore needs Python 3.11 or newer; found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@if [ -d .git ]; then $(BIN)/nbdev_install_hooks >/dev/null 2>&1 || true; fi
	$(PY) -m ipykernel install --sys-prefix --name mlcore --display-name "Python (mlcore)" >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

check-java:
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || { \
	  echo "Java 17 is required for Spark but no 'java' was found."; \
	  echo "Install it, e.g. 'sudo apt-get install openjdk-17-jre-headless' (Debian/Ubuntu) or 'brew install openjdk@17' (macOS),"; \
	  echo "or set JAVA_HOME to an installed JDK 17."; exit 3; }

# The flagship flow on the embedded defaults. Identities are clearly labelled DEMO ones: in production the
# trainer, the validator and the approver are different people (separation of duties is enforced).
run: $(STAMP) check-java
	@echo "== 1/6 generate: synthetic loan book, 24 monthly snapshots (catalog dataset loan_book)"
	$(BIN)/mlcore run generate -f params/synthetic/generate.yaml
	@echo "== 2/6 train: credit PD scorecard and challenger on the bundled German credit data (as demo-trainer)"
	MLCORE_USER=demo-trainer $(BIN)/mlcore run train -f params/credit_pd/train.yaml
	@echo "== 3/6 validate: regulatory test battery and gates; sets alias 'challenger' (as demo-validator)"
	MLCORE_USER=demo-validator $(BIN)/mlcore run validate -f params/credit_pd/validate.yaml
	@echo "== 4/6 approve: a second person moves 'champion' (DEMO identity, not a real four-eyes review)"
	$(BIN)/mlcore approve credit_pd challenger --by demo-approver --comment "DEMO approval by make run on embedded defaults"
	@echo "== 5/6 score: the latest snapshot of the loan book with the champion (batch, atomic publish)"
	MLCORE_USER=demo-scheduler $(BIN)/mlcore run score -f params/credit_pd/score.yaml
	@echo "== 6/6 monitor: the scored snapshot against the champion's frozen reference (stability, calibration both ways)"
	@MLCORE_USER=demo-scheduler $(BIN)/mlcore monitor run -f params/credit_pd/monitor.yaml; rc=$$?; \
	  case $$rc in 0) a="nothing to do";; 10) a="warn";; 20) a="retrain";; *) exit $$rc;; esac; \
	  echo "monitor verdict: $$a (exit code $$rc; a scheduler acts on it; the reasons are listed above)"; \
	  if [ $$rc -ne 0 ]; then echo "  as it should be: the champion learned German credit's 30% default rate and scores a book"; \
	  echo "  with about 6%, so its PDs are several times too high; make run scores with the approved model as it is and"; \
	  echo "  lets the monitor send it back (recalibrating is a model change: retrain, validate, approve; see nbs/guides/01_credit_pd.ipynb)"; fi
	@echo ""
	@echo "Results:"
	@echo "  MLflow runs, models, reports:  make ui   (http://127.0.0.1:5000; experiments credit_pd, synthetic)"
	@echo "  executed job notebooks:        runs/<job>/<stamp>-<run id>/"
	@echo "  scored data:                   data/generated/scored/credit_pd/  (quarantine in _quarantine/)"
	@echo "  monitoring history:            monitoring/   (report: runs/monitor/<stamp>-<run id>/report_<window>.html)"
	@echo "  audit trail:                   .venv/bin/mlcore audit log credit_pd ; .venv/bin/mlcore audit verify"

test: $(STAMP) check-java lint test-notebooks test-py

lint: $(STAMP)
	$(BIN)/ruff check mlcore tests nbs tools bench

test-notebooks: $(STAMP)
	@rm -rf $(TEST_TMP)/nbdev && mkdir -p $(TEST_TMP)/nbdev
	@# create the store's schema once: notebooks run two at a time, and two first connections would both create it
	MLFLOW_TRACKING_URI=sqlite:///$(TEST_TMP)/nbdev/mlflow.db $(PY) -c 'import mlflow; mlflow.MlflowClient().search_experiments()'
	MLFLOW_TRACKING_URI=sqlite:///$(TEST_TMP)/nbdev/mlflow.db MLCORE_ARTIFACT_ROOT=$(TEST_TMP)/nbdev/artifacts \
	  MLCORE_RUNS_DIR=$(TEST_TMP)/nbdev/runs $(BIN)/nbdev_test --n_workers 2 --timing

test-py: $(STAMP)
	$(BIN)/pytest

sync: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

# README.md is generated from nbs/index.ipynb (nbdev_readme needs Quarto, which is not installable here)
readme: $(STAMP)
	$(BIN)/jupyter nbconvert --to markdown --stdout nbs/index.ipynb 2>/dev/null > README.md

ui: $(STAMP)
	$(BIN)/mlcore ui

lab: $(STAMP) kernel
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser nbs

clean:
	rm -rf .tmp runs _docs _proc

# --- model ---
.PHONY: bench-model
# training on 1M rows x 20 characteristics (ours vs optbinning) and scoring with reasons on pandas and Spark local[2]
bench-model: $(STAMP) check-java
	$(PY) bench/bench_scorecard.py --rows 1000000

# --- deploy ---
.PHONY: bench-serving bench-batch serve
serve: $(STAMP)
	$(BIN)/mlcore serve --model credit_pd@champion

bench-serving: $(STAMP)
	$(PY) bench/bench_serving.py 2000

# batch scoring at 2M rows: the score job on Spark vs mlflow.pyfunc.spark_udf vs a pandas floor
bench-batch: $(STAMP) check-java
	$(PY) bench/bench_batch.py 2000000

# --- jobs ---
.PHONY: bench-runner
# the fixed cost of a job: a no-op job through `mlcore run` vs a plain script with the same MLflow calls (median of 5),
# broken down into runner start, store checks, repair, kernel start, cells and closing; PASS at 3.0 s or less
bench-runner: $(STAMP)
	$(PY) bench/bench_runner.py 5

# --- monitoring ---
.PHONY: bench-drift bench-drift-100m
# PSI/CSI of 20 characteristics on 10M rows: mlcore pandas path vs NumPy floor vs Evidently (at 1M)
bench-drift: $(STAMP)
	$(PY) bench/bench_drift.py
# Spark drift counter on 100M rows generated in Spark, driver memory 1 GB: rows/s and peak memory
bench-drift-100m: $(STAMP) check-java
	$(PY) bench/bench_drift_spark.py --rows 100000000

# --- docs ---
# docs site (HTML without Quarto; nbdev_docs when quarto is on PATH), its server, and the Jupyter kernel for `make lab`
.PHONY: docs docs-quick docs-serve kernel

docs: $(STAMP)
	$(PY) tools/docs_site.py build

docs-quick: $(STAMP)
	$(PY) tools/docs_site.py build --quick

docs-serve: $(STAMP)
	@test -f _docs/index.html || $(PY) tools/docs_site.py build
	$(PY) tools/docs_site.py serve --port $${PORT:-8000}

kernel: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name mlcore --display-name "Python (mlcore)" >/dev/null

# --- data ---
.PHONY: bench-data synthetic-100m validate-100m
# contract validation (pandas vs Spark local[2]) and generator throughput at 10M rows; figures printed side by side
bench-data: $(STAMP) check-java
	$(PY) bench/bench_generator.py --rows 10000000
	$(PY) bench/bench_contracts.py --rows 10000000

# the 100M-row synthetic loan book as Parquet partitioned by snapshot_month in data/generated/ (ignored by git)
synthetic-100m: $(STAMP) check-java
	$(BIN)/mlcore run generate -f params/synthetic/generate.yaml -p engine=spark -p dataset=loan_book_100m \
	  -p total_rows=100000000 -p months=24 -p driver_memory=2g

# Spark-only contract validation of the 100M-row book with driver memory 2g (run synthetic-100m first)
validate-100m: $(STAMP) check-java
	$(PY) bench/bench_contracts.py --spark-only --dataset loan_book_100m --driver-memory 2g

# --- validation2 ---
.PHONY: run-book
# the loan-book use case with an out-of-time sample: generate the book (24 months), train on 2023-01..2024-06 with a
# test split, validate on the test sample and the out-of-time months 2024-07..2024-12 side by side (DEMO identities)
run-book: $(STAMP)
	$(BIN)/mlcore run generate -f params/synthetic/generate.yaml
	MLCORE_USER=demo-trainer $(BIN)/mlcore run train -f params/credit_pd_book/train.yaml
	MLCORE_USER=demo-validator $(BIN)/mlcore run validate -f params/credit_pd_book/validate.yaml

# --- robustness ---
.PHONY: golden
# The golden record of the credit PD flow (tests/golden/credit_pd.json), checked by tests/project/test_golden.py. Re-record only
# when a change of results is intended, and say so in the commit.
golden: $(STAMP) check-java
	$(PY) tests/golden.py

.PHONY: soak fuzz
# 5 minutes of moderate load (40 req/s, 4 keep-alive clients) on `mlcore serve` of the store's champion on loopback
# (run `make run` first): prints requests, errors, 5xx, latency and server RSS; fails on any error or RSS growth >= 50 MB
soak: $(STAMP)
	$(PY) bench/soak_serving.py --seconds $${SOAK_SECONDS:-300} --rate 40 --clients 4 --rss-bound-mb 50
# the property-based tests with ten times the examples `make test` uses
fuzz: $(STAMP) check-java
	MLCORE_FUZZ_EXAMPLES=600 $(BIN)/pytest -s tests/ops/test_fuzz_params.py tests/data/test_fuzz_contracts.py tests/inference/test_fuzz_scoring.py tests/inference/test_fuzz_service.py

# --- reliability ---
.PHONY: tracking-server soak-concurrency test-spark-faults
# MLflow tracking server on 127.0.0.1:5001 backed by a private PostgreSQL cluster in tracking-server/ (kept across
# restarts); then `export MLFLOW_TRACKING_URI=http://127.0.0.1:5001`. Needs PostgreSQL's server binaries (apt-get install postgresql)
tracking-server: $(STAMP)
	$(BIN)/mlcore tracking-server --port $${PORT:-5001}

# 8 real trainings started at once, on the tracking server (PostgreSQL) and on the embedded SQLite file (make test runs 4),
# and SQLite locked by another writer while a job runs
soak-concurrency: $(STAMP) check-java
	MLCORE_SOAK_JOBS=8 $(BIN)/pytest -s -p no:cacheprovider tests/ops/test_reliability_concurrency.py tests/ops/test_reliability_server.py \
	  -k "concurrent or locked_mid_run"

# a Spark worker SIGKILLed (with its executor) during a batch score on a 2-worker standalone cluster (about 3-4 minutes)
test-spark-faults: $(STAMP) check-java
	MLCORE_SPARK_FAULTS=1 $(BIN)/pytest -s -p no:cacheprovider tests/ops/test_reliability_faults.py -k "worker"
