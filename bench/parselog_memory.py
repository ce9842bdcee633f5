"""Peak RSS of `nixdeck parse-log --json` on hostile logs (issue 10 item 8).

Usage: .venv/bin/python bench/parselog_memory.py [--derivations N] [--zero-mb MB]
Writes a log naming N distinct derivations (Build start + stop each) and runs parse-log on it, then
pipes MB of /dev/zero (no newline at all) into it; each in a child process whose peak RSS is read.
The last line is `RESULT drvs_rss_mb=… drvs_s=… zero_rss_mb=… zero_s=…`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import resource, subprocess, sys
p = subprocess.run(sys.argv[1], shell=True, stdout=subprocess.DEVNULL)
assert p.returncode == 0
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak(cmd: str) -> tuple[float, float]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, cmd], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--derivations", type=int, default=500_000)
    ap.add_argument("--zero-mb", type=int, default=300)
    a = ap.parse_args()
    cli = f"{sys.executable} -m nixdeck parse-log"
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "many.log"
        with open(log, "w") as f:
            for i in range(a.derivations):
                aid = (1 << 32) + i
                drv = f"/nix/store/{i:032d}-pkg-{i}.drv"
                f.write(f'@nix {{"action":"start","id":{aid},"level":3,"parent":0,"text":"building \'{drv}\'",'
                        f'"type":105,"fields":["{drv}","",1,1]}}\n@nix {{"action":"stop","id":{aid}}}\n')
        drvs_rss, drvs_s = peak(f"{cli} {log} --json")
    zero_rss, zero_s = peak(f"head -c {a.zero_mb * 1000 * 1000} /dev/zero | {cli} - --json")
    print(f"RESULT drvs_rss_mb={drvs_rss:.0f} drvs_s={drvs_s:.1f} zero_rss_mb={zero_rss:.0f} zero_s={zero_s:.1f}")


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
