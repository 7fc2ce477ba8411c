# shoal — set-up, tests, demo and benchmarks on a Debian 12 machine, as root.
# Every target is idempotent: a second run installs nothing that is already there.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Debian packages the project uses at run time and in its tests.
APT_PACKAGES := runc conmon iptables iproute2 mmdebstrap busybox-static \
	skopeo umoci docker-registry tshark python3-venv ca-certificates \
	util-linux procps wrk nghttp2-client

.PHONY: setup apt venv test demo bench clean-venv

setup: apt venv

apt:
	@bash scripts/apt-install.sh $(APT_PACKAGES)

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@# xds-protos carries an old copy of the opentelemetry.proto modules; the real
	@# package must own those files, whatever order pip installed the two in.
	$(BIN)/pip install -q --no-deps --force-reinstall \
	  "opentelemetry-proto==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

demo: setup
	$(BIN)/shoal demo

bench: setup
	$(BIN)/python bench/run_all.py

clean-venv:
	rm -rf $(VENV)
