# NixDeck: `make run` starts the app on its demo fleet, `make test` runs the whole suite.
# Both install what is missing first (Debian bookworm, as root or with sudo) and are quick the second time.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed
NIX_CONF_DIR_DEFAULT := /etc/nix

# The Nix matrix of `make test` (tests marked `nix` run once per controller-side Nix): `system` is
# bookworm's 2.8, `trixie` (2.26) and `sid` (2.34) come from Debian roots made once with debootstrap
# and cached in $(NIX_ROOTS) (see tests/nix_matrix.py). The roots need root (chroot); as another
# user only the system Nix is tested. `make test NIX_VERSIONS=system` tests one version.
comma := ,
NIX_ROOTS ?= /var/cache/nixdeck/nix-roots
NIX_VERSIONS ?= $(if $(filter 0,$(shell id -u)),system$(comma)trixie$(comma)sid,system)
NIX_SUITES := $(filter-out system /%,$(subst $(comma), ,$(NIX_VERSIONS)))

APT_PKGS := nix-bin openssh-server openssh-client git debootstrap xvfb xauth \
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-xinput0 libxcb-image0 \
  libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libxkbcommon0 \
  libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0 desktop-file-utils appstream

.PHONY: run test setup system venv nixconf nixroots lint typecheck bench screenshots clean

run: setup
	$(VPY) -m nixdeck demo run

# Each part says its wall time (CI's limit is on the whole target).
test: setup nixroots
	@t=$$(date +%s); NIXDECK_NIX_ROOTS=$(NIX_ROOTS) QT_QPA_PLATFORM=offscreen \
	  $(VPY) -m pytest -q -p no:cacheprovider --nix-versions=$(NIX_VERSIONS); rc=$$?; \
	  echo "make test: pytest (Nix $(NIX_VERSIONS)) took $$(( $$(date +%s) - t )) s"; exit $$rc
	@t=$$(date +%s); $(VPY) -m ruff check app tests bench && $(VPY) -m mypy; rc=$$?; \
	  echo "make test: ruff + mypy took $$(( $$(date +%s) - t )) s"; exit $$rc

# Debian roots for the Nix matrix, made on first use (in parallel, ~1-2 min, ~350 MB each), then reused.
nixroots: system
	@t=$$(date +%s); pids=""; for s in $(NIX_SUITES); do \
	  NIXDECK_NIX_ROOTS=$(NIX_ROOTS) $(SUDO) tests/nixroots/nixroot.sh ensure $$s >/dev/null & pids="$$pids $$!"; \
	done; rc=0; for p in $$pids; do wait $$p || rc=1; done; [ $$rc = 0 ] || exit 1; \
	echo "make test: Nix roots ($(or $(NIX_SUITES),none)) ready in $$(( $$(date +%s) - t )) s"

setup: system nixconf venv

system:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@$(SUDO) mkdir -p /run/sshd

# An offline Nix configuration, written only when Nix has none yet (platform-facts).
nixconf:
	@if [ ! -s $(NIX_CONF_DIR_DEFAULT)/nix.conf ] || ! grep -q 'flakes' $(NIX_CONF_DIR_DEFAULT)/nix.conf; then \
	  echo "writing an offline $(NIX_CONF_DIR_DEFAULT)/nix.conf"; \
	  $(SUDO) mkdir -p $(NIX_CONF_DIR_DEFAULT); \
	  echo '{"flakes":[],"version":2}' | $(SUDO) tee $(NIX_CONF_DIR_DEFAULT)/registry.json >/dev/null; \
	  printf '%s\n' 'experimental-features = nix-command flakes' 'build-users-group =' 'sandbox = false' \
	    'substituters =' 'flake-registry = $(NIX_CONF_DIR_DEFAULT)/registry.json' \
	    | $(SUDO) tee $(NIX_CONF_DIR_DEFAULT)/nix.conf >/dev/null; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	[ -x $(VPY) ] || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q -U pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $(STAMP)

lint: venv
	$(VPY) -m ruff check app tests bench
	$(VPY) -m mypy

bench: setup
	$(VPY) bench/engine.py

# the demo's own addresses (127.0.0.11-14, as `make run`); as root in a private network namespace,
# so a running demo is not in the way
screenshots: setup
	@if [ "$$(id -u)" = 0 ] && command -v unshare >/dev/null; then \
		unshare --net sh -c 'ip link set lo up && QT_QPA_PLATFORM=offscreen $(VPY) -m nixdeck.ui.screenshots docs/screenshots'; \
	else QT_QPA_PLATFORM=offscreen $(VPY) -m nixdeck.ui.screenshots docs/screenshots; fi

clean:
	rm -rf $(VENV) build dist *.egg-info
