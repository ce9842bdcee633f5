"""The Nix matrix of the test suite: the tests marked `nix` run once per controller-side Nix.

Versions (`--nix-versions`, env NIXDECK_TEST_NIX_VERSIONS, default `system,trixie,sid`):

- `system`: the `nix` on PATH when the session starts (Debian bookworm's 2.8 in CI);
- a Debian suite name (`trixie` = 2.26.x, `sid` = 2.34.x): that suite's Nix from a Debian root made
  once by `tests/nixroots/nixroot.sh` (debootstrap) and cached outside the checkout, run through a
  `nix` wrapper that enters the root with identical paths (chroot + bind mounts of /tmp, the checkout
  and the test's temp dirs);
- an absolute path to another `nix` binary (or its bin dir): used as it is, with the host's store.

A root has its own /nix. NixDeck reads some store paths itself (images, the VM script) and tests look
at build results, so while a root's Nix is under test the pytest process sees that root's /nix at
/nix: the session runs in a private mount namespace of its own (never visible to the host) and binds
the root's /nix over /nix for those tests only. The simulated devices keep the system Nix on their
side (their sshd sessions get sshd's default PATH and their own /nix), so a 2.34 controller deploys
to 2.8 devices: the mixed fleet users have.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
NIXROOT_SH = CHECKOUT / "tests" / "nixroots" / "nixroot.sh"
DEFAULT_VERSIONS = "system,trixie,sid"
#: Programs the wrapper dir provides (Debian's nix-bin links them all to `nix`).
NIX_PROGRAMS = (
    "nix", "nix-build", "nix-channel", "nix-collect-garbage", "nix-copy-closure", "nix-daemon",
    "nix-env", "nix-hash", "nix-instantiate", "nix-prefetch-url", "nix-shell", "nix-store",
)  # fmt: skip

_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2

WRAPPER = """\
#!/bin/sh
# `{prog}` from the Debian {suite} root {root} (NixDeck's test matrix, tests/nix_matrix.py).
# Enters the root in a private mount namespace with /proc, /dev and the host folders Nix must see at
# the same paths ({binds} and NIXDECK_NIXROOT_BINDS, colon-separated), then runs the root's {prog}
# in the same working directory. exec all the way: the pid is nix's, signals reach it.
R='{root}'
if [ "${{NIXDECK_NIXROOT_ENTERED:-}}" != "$R" ]; then
  NIXDECK_NIXROOT_ENTERED="$R" exec unshare -m --propagation private "$0" "$@"
fi
unset NIXDECK_NIXROOT_ENTERED
fail() {{ echo "nix wrapper ({suite} root): $*" >&2; exit 125; }}
mount -t proc proc "$R/proc" || fail "cannot mount /proc in $R"
mount --rbind /dev "$R/dev" || fail "cannot bind /dev in $R"
binds='{binds_colon}':${{NIXDECK_NIXROOT_BINDS:-}}
old_ifs=$IFS; IFS=:
for d in $binds; do
  [ -n "$d" ] && [ -d "$d" ] || continue
  case "$d" in /nix|/nix/*|/proc|/proc/*|/dev|/dev/*) continue;; esac
  mkdir -p "$R$d" && mount --rbind "$d" "$R$d" || fail "cannot bind $d in $R"
done
IFS=$old_ifs
[ -d "$R$PWD" ] || fail "the working directory $PWD is not visible in the root (add it to NIXDECK_NIXROOT_BINDS)"
exec chroot "$R" /bin/sh -c 'cd "$0" && exec /usr/bin/{prog} "$@"' "$PWD" "$@"
"""


class MatrixError(RuntimeError):
    """The Nix matrix cannot be set up (message says what to do)."""


@dataclass(frozen=True)
class NixUnderTest:
    """One controller-side Nix: `label` names it in test ids (`nix-2.34.8`)."""

    name: str  # system, a Debian suite, or a path
    version: str  # 2.34.8
    bindir: Path | None  # prepended to PATH (None: PATH as the session found it)
    root: Path | None  # the Debian root whose /nix is the store (None: the host's /nix)

    @property
    def label(self) -> str:
        return f"nix-{self.version}"


_VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?\S*)")


def _version_of(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MatrixError(f"cannot run {argv[0]} --version: {e}") from e
    m = _VERSION_RE.search(out.stdout)
    if out.returncode != 0 or m is None:
        raise MatrixError(f"{argv[0]} --version failed (exit {out.returncode}): {(out.stderr or out.stdout).strip()}")
    return m.group(1)


def ensure_root(suite: str) -> Path:
    """The Debian root of `suite`, created on first use (needs root, debootstrap and the mirror)."""
    if os.geteuid() != 0:
        raise MatrixError(
            f"the Nix of Debian {suite} runs from a chroot, which needs root; "
            f"run as root or choose versions with --nix-versions=system"
        )
    proc = subprocess.run([str(NIXROOT_SH), "ensure", suite], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MatrixError(f"cannot create the Debian {suite} root: {proc.stderr.strip()}")
    return Path(proc.stdout.strip().splitlines()[-1])


def write_wrappers(suite: str, root: Path, bindir: Path, binds: list[str]) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    for prog in NIX_PROGRAMS:
        text = WRAPPER.format(prog=prog, suite=suite, root=root, binds=", ".join(binds), binds_colon=":".join(binds))
        tmp = bindir / f".{prog}.tmp"
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(bindir / prog)


def resolve(spec: str, session_dir: Path, binds: list[str]) -> NixUnderTest:
    """One entry of --nix-versions as a NixUnderTest (creating its root if needed)."""
    spec = spec.strip()
    if spec == "system":
        nix = shutil.which("nix")
        if nix is None:
            raise MatrixError("no `nix` on PATH for the `system` entry of the Nix matrix (make setup installs it)")
        return NixUnderTest("system", _version_of([nix]), None, None)
    if spec.startswith("/"):
        p = Path(spec)
        nix = p / "nix" if p.is_dir() else p
        if not os.access(nix, os.X_OK):
            raise MatrixError(f"{nix} is not an executable nix")
        bindir = session_dir / f"bin-{abs(hash(spec))}"
        bindir.mkdir(parents=True, exist_ok=True)
        for prog in NIX_PROGRAMS:
            target = nix.parent / prog
            if target.exists() and not (bindir / prog).exists():
                (bindir / prog).symlink_to(target)
        return NixUnderTest(spec, _version_of([str(nix)]), bindir, None)
    if not re.fullmatch(r"[a-z][a-z0-9-]*", spec):
        raise MatrixError(f"unknown Nix {spec!r} in --nix-versions (system, a Debian suite or a path)")
    root = ensure_root(spec)
    bindir = session_dir / f"bin-{spec}"
    write_wrappers(spec, root, bindir, binds)
    return NixUnderTest(spec, _version_of([str(bindir / "nix")]), bindir, root)


class NixSwitch:
    """Makes one NixUnderTest current for the pytest process: PATH and what /nix shows."""

    def __init__(self) -> None:
        self.base_path = os.environ.get("PATH", os.defpath)
        self.current: NixUnderTest | None = None
        self.private = False
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._bound: Path | None = None

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise MatrixError(f"{what}: {os.strerror(err)}")

    def go_private(self) -> None:
        """Own mount namespace for this process (before threads exist), nothing propagating out."""
        if self.private:
            return
        if threading.active_count() > 1:
            raise MatrixError("the Nix matrix must set up its mount namespace before any thread starts")
        self._check(self._libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        self._check(self._libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
        self.private = True

    def _store(self, root: Path | None) -> None:
        if root == self._bound:
            return
        if self._bound is not None:
            self._check(self._libc.umount2(b"/nix", _MNT_DETACH), "unmounting /nix")
            self._bound = None
        if root is not None:
            if not self.private:
                raise MatrixError("a Debian root's store needs the private mount namespace")
            (root / "nix").mkdir(exist_ok=True)
            Path("/nix").mkdir(exist_ok=True)
            self._check(self._libc.mount(str(root / "nix").encode(), b"/nix", None, _MS_BIND, None), "binding /nix")
            self._bound = root

    def activate(self, nix: NixUnderTest | None) -> None:
        if nix is self.current:
            return
        self._store(nix.root if nix is not None else None)
        bindir = nix.bindir if nix is not None else None
        os.environ["PATH"] = f"{bindir}:{self.base_path}" if bindir else self.base_path
        self.current = nix

    def close(self) -> None:
        self.activate(None)


def session_binds(basetemp: Path) -> list[str]:
    """Host folders the root's Nix must see: /tmp, the temp dir, pytest's basetemp, the checkout."""
    found: list[str] = []
    for d in ("/tmp", tempfile.gettempdir(), str(basetemp), str(CHECKOUT)):
        real = os.path.realpath(d)
        if not any(real == f or real.startswith(f + "/") for f in found):
            found.append(real)
    return found
