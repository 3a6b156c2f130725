# valbench: `make bench` and `make test` set everything up on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
VALBENCH := $(VENV)/bin/valbench
JOBS   ?= 2
OUT    ?= reports

.PHONY: install data data-embed bench bench-quick bench-real bench-real-cnn bench-real-embed bench-lds report reference-report test bench-ci bench-baseline clean scaling

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency list changes; editable, so code edits need no reinstall.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# OpenDataVal (optional peer, methods/opendataval.py): without its pins (torch~=2.1, numpy<1.26), see architecture.md
	$(PY) -m pip install -q --no-deps opendataval==1.3.0 geomloss==0.2.6 torchvision==0.28.0
	$(PY) -m pip install -q tqdm==4.70.1 requests==2.34.2 transformers==5.24.0
	# pyDVL (optional peer, methods/pydvl.py): without its pin numpy<2 (the adapter checks it works at import)
	$(PY) -m pip install -q --no-deps pydvl==0.10.0
	$(PY) -m pip install -q pyDeprecate==0.3.2 more-itertools==10.7.0 numcodecs==0.15.1 Deprecated==1.3.1 wrapt==2.5.2 \
		cloudpickle==3.1.3 psutil==7.2.2 zarr==3.1.6 donfig==0.8.1.post1 google-crc32c==1.9.0  # zarr: pydvl.influence
	# dattri (optional peer, methods/dattri.py): its requirements numpy, scipy, pyyaml, tqdm are ours; pretty_midi is unused
	$(PY) -m pip install -q --no-deps dattri==0.3.0
	touch $(STAMP)

install: $(STAMP)

# The real datasets (fashion_mnist, letter, shuttle, satellite, dna, spam, caravan) from three Debian packages
# into $VALBENCH_DATA (default data/), checksums verified; a second run fetches nothing (docs/datasets.md: Real datasets).
data: install
	$(PY) -m valbench.datasets.fetch

bench: install
	$(VALBENCH) run --config configs/default.toml --jobs $(JOBS) --out $(OUT)

bench-quick: install
	$(VALBENCH) run --config configs/quick.toml --jobs $(JOBS) --out $(OUT)

# Opt-in, not in CI: the real datasets at their real sizes (configs/real.toml; docs/datasets.md: The real grid).
# Resumes: cells already in reports/real/results.jsonl are skipped, so an interrupted run goes on where it stopped.
# --extend: the committed reports/real was run before tracin and data-oob joined configs/real.toml; the run grows to it.
bench-real: data
	$(VALBENCH) run --config configs/real.toml --jobs $(JOBS) --out $(OUT) --run-id real --extend

# Opt-in: Fashion-MNIST with the CNN learner (configs/real-cnn.toml). Resumes like bench-real; --extend: the
# committed reports/real-cnn holds a first part of the grid (seed 0, 20 % flipped labels) and grows to the config.
bench-real-cnn: data
	$(VALBENCH) run --config configs/real-cnn.toml --jobs $(JOBS) --out $(OUT) --run-id real-cnn --extend

# Opt-in: the frozen-feature regime (Fashion-MNIST as frozen ConvNet features; logistic regression, then the MLP
# head). Resumes like bench-real (run ids real-embed and real-embed-mlp).
bench-real-embed: data-embed
	$(VALBENCH) run --config configs/real-embed.toml --jobs $(JOBS) --out $(OUT) --run-id real-embed
	$(VALBENCH) run --config configs/real-embed-mlp.toml --jobs $(JOBS) --out $(OUT) --run-id real-embed-mlp

# The frozen ConvNet features of Fashion-MNIST (fashion_mnist features="cnn"), built once into
# $VALBENCH_DATA/derived/ (about 2 CPU minutes, one thread; a second run only verifies the checksum).
data-embed: data
	$(PY) -m valbench.datasets.features

# Opt-in: the linear datamodeling score of the per-point methods (benchmarks/lds.py; docs/attribution.md):
# breast_cancer, logreg and the MLP, 50 random half subsets (cached in reports/.cache/lds); 2 min 40 s of CPU
# (16 min wall on the 2 cores shared by 8 sessions where it was measured), most of it banzhaf and tmc on the MLP.
bench-lds: install
	$(PY) benchmarks/lds.py

report: install
	$(VALBENCH) report $(OUT)/latest

# The committed reference report (reports/reference/) and the README's headline table, from the default grid.
reference-report: install
	rm -rf reports/reference reports/.cache  # a fresh run: stored cells of older code would otherwise be kept
	$(VALBENCH) run --config configs/default.toml --jobs $(JOBS) --out reports --run-id reference
	$(PY) -m valbench.report.readme reports/reference README.md

test: install
	$(PY) -m pytest

# Runtime regression gate (bench/perfgate.py): the tests/perf benchmarks as ratios to a calibration workload,
# compared with the committed perf/baseline.json; fails when one is more than TOLERANCE x slower.
TOLERANCE ?= 1.5

bench-ci: install
	$(PY) -m valbench.perfgate check --tolerance $(TOLERANCE)

# Rewrite perf/baseline.json on purpose (median of 3 runs of the perf suite); commit it with the change that moved it.
bench-baseline: install
	$(PY) -m valbench.perfgate baseline

# Cost vs train size of every native method (synthetic data, 250 ... 20k points, SCALING_CAP s per point):
# reports/scaling/scaling.{json,csv,png} with the log-log slope per method.
SCALING_CAP ?= 60

scaling: install
	$(PY) -m valbench.scaling --cap $(SCALING_CAP) --out $(OUT)/scaling

clean:
	rm -rf $(VENV) reports/latest reports/run-* .pytest_cache
