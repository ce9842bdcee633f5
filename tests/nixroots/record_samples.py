"""Record real Nix output for the parser tests: `python tests/nixroots/record_samples.py BINDIR OUTDIR`.

BINDIR holds the `nix` to record (the system one: /usr/bin; a Debian root's: the matrix wrapper dir);
OUTDIR gets `<name>.cmd/.rc/.stdout/.stderr` per sample, as in tests/data/nixlogs/. The copy sample
copies to a simulated device running the system Nix (the mixed fleet), so run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))

from nixdeck.core.ssh.knownhosts import KnownHosts  # noqa: E402
from nixdeck.core.ssh.options import nix_ssh_options  # noqa: E402
from nixdeck.core.ssh.simdevice import SimFleet  # noqa: E402

LOG = ["--log-format", "internal-json", "-v"]
DRV = 'builtins.derivation {{ name = "{name}"; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; {extra} args = [ "-c" "{script}" ]; }}'


def drv(name: str, script: str, extra: str = "") -> str:
    return DRV.format(name=name, script=script, extra=extra)


def flake(dir: Path, body: str, inputs: str = "") -> Path:
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "flake.nix").write_text(f"{{\n  inputs = {{ {inputs} }};\n  outputs = {{ self, ... }}@i: {body};\n}}\n")
    return dir


def git_commit(dir: Path) -> None:
    g = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*g, "init", "-q", str(dir)], check=True)
    subprocess.run([*g, "add", "flake.nix"], cwd=dir, check=True)
    subprocess.run([*g, "commit", "-qm", "init"], cwd=dir, check=True)


class Recorder:
    def __init__(self, bindir: Path, out: Path, work: Path) -> None:
        self.nix = str(bindir / "nix")
        self.out = out
        self.work = work
        self.env = dict(os.environ, NO_COLOR="1", XDG_CACHE_HOME=str(work / "cache"),
                        PATH=f"{bindir}:{os.environ['PATH']}")
        out.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> int:
        argv = [self.nix, *args]
        res = subprocess.run(argv, capture_output=True, cwd=cwd, env={**self.env, **(env or {})}, timeout=300)
        shown = ["nix", *args]
        (self.out / f"{name}.cmd").write_text(" ".join(shown) + "\n")
        (self.out / f"{name}.rc").write_text(f"{res.returncode}\n")
        (self.out / f"{name}.stdout").write_bytes(res.stdout)
        (self.out / f"{name}.stderr").write_bytes(res.stderr)
        print(f"{name}: exit {res.returncode}, {len(res.stderr)} bytes of stderr")
        return res.returncode


def main() -> None:
    bindir, out = Path(sys.argv[1]), Path(sys.argv[2])
    tag = uuid.uuid4().hex[:6]
    work = Path("/tmp/nixdeck-samples") / tag
    shutil.rmtree(work, ignore_errors=True)
    r = Recorder(bindir, out, work)
    attr = "#top"
    ok = flake(work / "ok", "{ top = " + drv(f"top-{tag}", "echo building top; echo line two; mkdir $out",
                                            f'dep = {drv(f"dep-{tag}", "echo dep; mkdir $out")};') + "; }")
    r.run("build-ok.internal-json", "build", "--json", "--no-link", f"path:{ok}{attr}", *LOG)
    bad = flake(work / "fail", "{ top = " + drv(f"top-fail-{tag}", "mkdir $out", 'dep = ' + drv(
        f"dep-fail-{tag}", "echo compiling; echo x.c:42: error: simulated compiler error; exit 1") + ";") + "; }")
    r.run("build-fail.internal-json", "build", "--json", "--no-link", f"path:{bad}{attr}", *LOG)
    undef = flake(work / "undef", "{ top = hostNmae; }")
    r.run("eval-undef.internal-json", "eval", "--json", f"path:{undef}{attr}", *LOG)
    typ = flake(work / "type", '{ top = let f = x: "n" + x; in builtins.seq (f 1) 1; }')
    r.run("eval-type.show-trace.internal-json", "eval", "--json", "--show-trace", f"path:{typ}{attr}", *LOG)
    deep = flake(work / "deep", '{ top = let f = n: if n == 0 then throw "deep recursion bottom" else 1 + f (n - 1); in f 1200; }')
    r.run("eval-deep-trace.show-trace.internal-json", "eval", "--json", "--show-trace", f"path:{deep}{attr}", *LOG)
    untracked = flake(work / "untracked", "{ top = import ./extra.nix; }")
    git_commit(untracked)
    (untracked / "extra.nix").write_text("1\n")
    r.run("eval-untracked.internal-json", "eval", "--json", f"git+file://{untracked}{attr}", *LOG)
    dep = flake(work / "input", "{ v = 42; }")
    git_commit(dep)
    uses = flake(work / "uses-input", "{ top = i.dep.v; }", f'dep.url = "git+file://{dep}";')
    r.run("eval-fetch-input.internal-json", "eval", "--json", f"path:{uses}{attr}", *LOG)
    # a copy of 3 paths to a device running the system Nix
    three = flake(work / "three", "{ top = " + drv(f"c-top-{tag}", "echo $a $b > $out", (
        f'a = {drv(f"c-a-{tag}", "echo a > $out")}; b = {drv(f"c-b-{tag}", "echo b > $out")};')) + "; }")
    res = subprocess.run([r.nix, "build", "--json", "--no-link", f"path:{three}{attr}"], env=r.env,
                         capture_output=True, text=True, check=True)
    import json

    top = json.loads(res.stdout)[0]["outputs"]["out"]
    fleet = SimFleet(work / "fleet", 1, first_octet=240)
    fleet.start()
    try:
        kh = KnownHosts(work / "known_hosts")
        kh.ensure_exists()
        fleet.trust_all(kh)
        target = fleet.target(fleet.devices[0])
        opts = nix_ssh_options(target, kh.path, work / "data")
        r.run("copy-ssh-ng-3-paths-to-nix28.internal-json", "copy", "--no-check-sigs", "--to",
              target.store_uri("ssh-ng"), top, *LOG, env=opts.env())
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
