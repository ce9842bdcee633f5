"""`--log-format internal-json` on stderr vs. Nix 2.30+'s `json-log-path` (records on their own fd).

Usage: .venv/bin/python bench/nix_log_channel.py [--nix PATH] [--lines N] [--runs N]
Builds one derivation printing N log lines, `runs` times each way, alternating (the output deleted in
between; both ways write their records to a file),
with a Nix >= 2.30 (e.g. the sid root's wrapper of the test matrix, see tests/nix_matrix.py), and
parses what each way gives with NixLogParser. The last line is
`RESULT stderr_s=… fdlog_s=… stderr_bytes=… fdlog_bytes=… human_stderr_bytes=… parse_stderr_s=… parse_fdlog_s=…`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from nixdeck.core.nix.parser import NixLogParser

FLAKE = """{ outputs = { self }: { top = builtins.derivation { name = "bench-log-%(tag)s"; system = "x86_64-linux";
  builder = "/bin/sh"; PATH = "/usr/bin:/bin";
  args = [ "-c" "i=0; while [ $i -lt %(lines)d ]; do echo log line $i of the build; i=$((i+1)); done; mkdir $out" ]; }; }; }
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nix", default="nix")
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nixdeck-bench-log-"))
    (work / "flake.nix").write_text(FLAKE % {"tag": os.getpid(), "lines": a.lines})
    env = dict(os.environ, NO_COLOR="1", XDG_CACHE_HOME=str(work / "cache"))
    run = lambda *args, **kw: subprocess.run([a.nix, *args], env=env, capture_output=True, **kw)  # noqa: E731
    drv = run("eval", "--raw", f"path:{work}#top.drvPath", check=True).stdout.decode()
    out = json.loads(run("build", "--no-link", "--json", f"{drv}^*", check=True).stdout)[0]["outputs"]["out"]
    times: dict[str, list[float]] = {"stderr": [], "fdlog": []}
    sizes: dict[str, int] = {}
    for _ in range(a.runs):
        for way in ("stderr", "fdlog"):
            run("store", "delete", out)
            t = time.perf_counter()
            if way == "stderr":
                with open(work / "stderr.log", "wb") as log:  # a file, as fd 3 is: the same sink
                    r = subprocess.run([a.nix, "build", "--no-link", f"{drv}^*", "--log-format", "internal-json",
                                        "-v"], env=env, stdout=subprocess.DEVNULL, stderr=log,
                                       stdin=subprocess.DEVNULL)
                sizes["stderr"] = (work / "stderr.log").stat().st_size
            else:
                with open(work / "fd.log", "wb") as log:
                    fd = log.fileno()
                    r = subprocess.run([a.nix, "build", "--no-link", f"{drv}^*", "-v", "--option", "json-log-path",
                                        "/dev/fd/3"], env=env, capture_output=True, pass_fds=(fd,),
                                       stdin=subprocess.DEVNULL, preexec_fn=functools.partial(os.dup2, fd, 3))
                sizes["fdlog"] = (work / "fd.log").stat().st_size
                sizes["human"] = len(r.stderr)
            times[way].append(time.perf_counter() - t)
            assert r.returncode == 0, way

    def parse_time(data: bytes) -> tuple[float, int]:
        t = time.perf_counter()
        p = NixLogParser()
        p.feed(data)
        p.close()
        return time.perf_counter() - t, p.log_line_count

    ps, n1 = parse_time((work / "stderr.log").read_bytes())
    pf, n2 = parse_time(b"".join(b"@nix " + ln + b"\n" for ln in (work / "fd.log").read_bytes().splitlines()))
    assert n1 == n2 == a.lines, (n1, n2)
    print(f"RESULT stderr_s={statistics.median(times['stderr']):.3f} fdlog_s={statistics.median(times['fdlog']):.3f} "
          f"stderr_bytes={sizes['stderr']} fdlog_bytes={sizes['fdlog']} human_stderr_bytes={sizes['human']} "
          f"parse_stderr_s={ps:.3f} parse_fdlog_s={pf:.3f}")


if __name__ == "__main__":
    main()
