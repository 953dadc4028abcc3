# netconform: two commands on a fresh Debian 12 machine.
#   make conformance   install what is missing, run the suites on the reference labs (sandboxed)
#   make check         install what is missing, run the harness's own tests
#   make bench         the speed benchmark (reports/bench.json)
# Both are idempotent: a second run installs nothing and goes straight to the tests.

PYTHON      ?= /usr/bin/python3
VENV        ?= .venv
WORKERS     ?= 2
APT_PACKAGES = iproute2 iptables nftables tcpdump iputils-ping ethtool python3-venv \
               containernetworking-plugins netavark
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PY          := $(VENV)/bin/python
PYTEST      := $(VENV)/bin/pytest

.PHONY: setup system-packages conformance check bench clean

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "netconform: installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e .
	@touch $@

conformance: setup
	$(PYTEST) suites/ -n $(WORKERS)

check: setup
	$(PYTEST) tests/ -n $(WORKERS)

bench: setup
	$(PY) -m harness.bench

clean:
	rm -rf $(VENV) reports/* *.egg-info
