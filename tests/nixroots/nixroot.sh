#!/bin/sh
# Debian roots that carry another Nix for the test matrix (issue 13), cached outside the checkout.
#   nixroot.sh ensure SUITE   create <cache>/SUITE once (debootstrap minbase + nix-bin), print its path
#   nixroot.sh path SUITE     print the path (no creation)
# (libdbi-perl is named because debootstrap does not resolve the virtual perl-dbdabi-94 that
# nix-bin's libdbd-sqlite3-perl needs.)
# A root is built in SUITE.tmp.<pid> and renamed into place only when complete (with a .complete stamp
# written last), so an interrupted creation leaves no half root behind: the next run starts afresh.
# Needs root (debootstrap, chroot). NIXDECK_NIX_ROOTS overrides the cache dir; NIXDECK_DEBIAN_MIRROR
# the mirror (default: the first Debian mirror apt uses here); NIXDECK_NIXROOT_CHECK the command that
# proves the root works (`sh -c` with the root as $1; default: its nix --version).
set -eu
CACHE="${NIXDECK_NIX_ROOTS:-/var/cache/nixdeck/nix-roots}"
cmd="${1:-}"; suite="${2:-}"
case "$suite" in ""|*/*|.*) echo "nixroot.sh: usage: nixroot.sh ensure|path SUITE" >&2; exit 2;; esac
root="$CACHE/$suite"

mirror() {
  if [ -n "${NIXDECK_DEBIAN_MIRROR:-}" ]; then echo "$NIXDECK_DEBIAN_MIRROR"; return; fi
  m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
      | grep -v security | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' \
      | awk '{print $1; exit}')
  echo "${m:-http://deb.debian.org/debian}"
}

case "$cmd" in
  path) echo "$root"; exit 0;;
  ensure) ;;
  *) echo "nixroot.sh: unknown command '$cmd' (ensure|path)" >&2; exit 2;;
esac

if [ -f "$root/.complete" ]; then echo "$root"; exit 0; fi
command -v debootstrap >/dev/null || { echo "nixroot.sh: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$CACHE"
exec 9>"$CACHE/.$suite.lock"
flock 9                                   # one creator at a time; the others wait and reuse it
if [ -f "$root/.complete" ]; then echo "$root"; exit 0; fi
rm -rf "$root" "$CACHE/$suite".tmp.*      # leftovers of an interrupted creation
tmp="$CACHE/$suite.tmp.$$"
start=$(date +%s)
echo "nixroot.sh: creating the Debian $suite root for its Nix in $root (once; ~30-60 s)" >&2
if ! debootstrap --variant=minbase --include=nix-bin,libdbi-perl,git,ca-certificates,openssh-client \
     "$suite" "$tmp" "$(mirror)" >"$CACHE/$suite.debootstrap.log" 2>&1; then
  echo "nixroot.sh: debootstrap $suite failed; see $CACHE/$suite.debootstrap.log" >&2
  cat "$tmp/debootstrap/debootstrap.log" >>"$CACHE/$suite.debootstrap.log" 2>/dev/null || true
  grep -h -m 5 -B2 'error' "$CACHE/$suite.debootstrap.log" >&2 || tail -n 5 "$CACHE/$suite.debootstrap.log" >&2
  rm -rf "$tmp"; exit 1
fi
mkdir -p "$tmp/etc/nix" "$tmp/nix"
echo '{"flakes":[],"version":2}' >"$tmp/etc/nix/registry.json"
printf '%s\n' 'experimental-features = nix-command flakes' 'build-users-group =' 'sandbox = false' \
  'substituters =' 'flake-registry = /etc/nix/registry.json' >"$tmp/etc/nix/nix.conf"
rm -rf "$tmp/var/cache/apt/archives/"*.deb
check='mount -t proc proc "$1/proc" && exec chroot "$1" /usr/bin/nix --version'
[ -z "${NIXDECK_NIXROOT_CHECK:-}" ] || check=$NIXDECK_NIXROOT_CHECK   # tests: a root without Nix
unshare -m --propagation private sh -c "$check" sh "$tmp" >"$tmp/.nix-version" \
  || { echo "nixroot.sh: the nix of the $suite root does not run" >&2; rm -rf "$tmp"; exit 1; }
date -u +%FT%TZ >"$tmp/.complete"
mv "$tmp" "$root"
echo "nixroot.sh: $suite root ready in $(( $(date +%s) - start )) s: $(cat "$root/.nix-version")" >&2
echo "$root"
