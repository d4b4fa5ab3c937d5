# make demo: run the bundled demo guest.  make test: run the test suite, with
# tdxsim's compiled hooks and without (TDXSIM_NATIVE=0).
# Both create .venv and install tdxsim and its dependencies into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test soak wheel-test bench check-tools clean

$(BIN)/.installed: pyproject.toml setup.py $(wildcard src/tdxsim/*.[ch] src/tdxsim/*/*.c)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,prove]'
	touch $@

check-tools:
	@command -v as >/dev/null && command -v ld >/dev/null && command -v cpp >/dev/null || { \
	  echo "tdxsim needs GNU binutils (as, ld) and the C preprocessor (cpp) to build guests."; \
	  echo "Install them with: apt-get install binutils cpp   (Debian/Ubuntu)"; exit 1; }

demo: check-tools $(BIN)/.installed
	$(BIN)/tdxsim run --trace demo

# The whole suite twice: with the compiled hooks, then Python only.
test: check-tools $(BIN)/.installed
	$(BIN)/python -m pytest -q
	TDXSIM_NATIVE=0 $(BIN)/python -m pytest -q

# the robustness properties of tests/test_rel_hypothesis.py get SOAK examples each
# (5 properties: SOAK=20000 is 100,000 generated inputs, about 40 min on one core)
SOAK ?= 20000
soak: check-tools $(BIN)/.installed
	TDXSIM_SOAK_SEEDS=1000 $(BIN)/python -m pytest -q tests/test_hostile.py tests/test_heckler.py
	TDXSIM_SOAK=$(SOAK) $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_rel_hypothesis.py
	TDXSIM_SOAK_FIRMWARE=1 $(BIN)/python -m pytest -q tests/test_firmware.py

# builds a wheel and an sdist, installs each into a fresh venv without a C compiler
wheel-test: check-tools $(BIN)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider packaging_tests

bench: check-tools $(BIN)/.installed
	$(BIN)/tdxsim bench

clean:
	rm -rf $(VENV) build src/*.egg-info src/tdxsim/_native*.so
