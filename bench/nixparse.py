"""Benchmark of the Nix log parser against a `splitlines` + `json.loads` floor.

Makes a 200k-line internal-json log in the 2.8 style (no `parent`) and the 2.26 style (with
`parent`), each with Build activities, build log lines (result 101), phases, progress and
set-expected results, copy activities, messages and a few plain lines. For each it times the parser
(fed in 64 KiB chunks, as from a pipe) and the floor (split into lines, `json.loads` every `@nix`
line) in the same run, best of 3. RSS growth: one parser is fed 200k more lines of a second log
and the process RSS is compared before and after (the parser must keep memory flat).
Last line: `RESULT ratio_28=... ratio_226=... rss_growth_mb=...`.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Iterator

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))

from nixdeck.core.nix.parser import NixLogParser  # noqa: E402

LINES = 200_000
CHUNK = 64 * 1024


def _rec(obj: dict[str, object]) -> str:
    return "@nix " + json.dumps(obj, separators=(",", ":"))


def make_log(n_lines: int, with_parent: bool, id_base: int) -> bytes:
    """A realistic internal-json log of about `n_lines` lines."""
    out: list[str] = []
    par = {"parent": 0} if with_parent else {}
    realise, builds, copies = id_base, id_base + 1, id_base + 2
    out.append(_rec({"action": "msg", "level": 1, "msg": "\x1b[35;1mwarning:\x1b[0m Git tree '/srv/x' is dirty"}))
    for aid, t in ((realise, 102), (builds, 104), (copies, 103)):
        out.append(_rec({"action": "start", "id": aid, "level": 0, "text": "", "type": t, **par}))
    next_id = id_base + 10
    n_drvs = 100
    done = 0
    drv = 0
    while len(out) < n_lines - 10:
        drv_path = f"/nix/store/{drv + id_base:032d}-pkg-{drv}.drv"
        bid = next_id
        next_id += 1
        out.append(_rec({
            "action": "start", "id": bid, "level": 3, "type": 105, **({"parent": builds} if with_parent else {}),
            "text": f"building '{drv_path}'", "fields": [drv_path, "ssh://builder1" if drv % 3 == 0 else "", 1, 1],
        }))
        out.append(_rec({"action": "result", "id": builds, "type": 105, "fields": [done, n_drvs, 1, 0]}))
        for phase in ("unpackPhase", "buildPhase", "installPhase"):
            out.append(_rec({"action": "result", "id": bid, "type": 104, "fields": [phase]}))
            for i in range(600):
                out.append(_rec({"action": "result", "id": bid, "type": 101,
                                 "fields": [f"gcc -O2 -c src/file{i}.c -o build/file{i}.o -Wall -DVERSION=\"{drv}\""]}))
                if i % 3 == 0:
                    out.append(_rec({"action": "result", "id": builds, "type": 105, "fields": [done, n_drvs, 1, 0]}))
                if i % 10 == 0:
                    out.append(_rec({"action": "result", "id": realise, "type": 106, "fields": [101, 0]}))
        done += 1
        out.append(_rec({"action": "result", "id": builds, "type": 105, "fields": [done, n_drvs, 0, 0]}))
        out.append(_rec({"action": "stop", "id": bid}))
        cid = next_id
        next_id += 1
        out.append(_rec({"action": "start", "id": cid, "level": 3, "type": 100, **par,
                         "text": f"copying path '{drv_path[:-4]}' to 'ssh-ng://root@h'",
                         "fields": [drv_path[:-4], "local", "ssh-ng://root@h"]}))
        for k in range(20):
            out.append(_rec({"action": "result", "id": cid, "type": 105, "fields": [k * 65536, 20 * 65536, 0, 0]}))
        out.append(_rec({"action": "stop", "id": cid}))
        if drv % 7 == 0:
            out.append("ssh: warning: some plain stderr line")
            out.append(_rec({"action": "msg", "level": 3, "msg": f"copying {drv} paths"}))
        drv += 1
    for aid in (copies, builds, realise):
        out.append(_rec({"action": "stop", "id": aid}))
    return ("\n".join(out[:n_lines]) + "\n").encode()


def chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


def time_parser(data: bytes) -> float:
    t0 = time.perf_counter()
    p = NixLogParser()
    for c in chunks(data):
        p.feed(c)
    p.close()
    return time.perf_counter() - t0


def time_floor(data: bytes) -> float:
    t0 = time.perf_counter()
    loads = json.loads
    for line in data.splitlines():
        if line.startswith(b"@nix "):
            loads(line[5:])
    return time.perf_counter() - t0


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def best(fn: object, data: bytes, runs: int = 3) -> float:
    return min(fn(data) for _ in range(runs))  # type: ignore[operator]


def main() -> int:
    ratios = {}
    for label, parent in (("28", False), ("226", True)):
        data = make_log(LINES, parent, 1 << 44)
        assert data.count(b"\n") == LINES
        gc.collect()
        tp, tf = best(time_parser, data), best(time_floor, data)
        ratios[label] = tp / tf
        print(f"nix {label}: {LINES} lines, {len(data) / 2**20:.1f} MiB: parser {tp:.3f}s, floor {tf:.3f}s, "
              f"ratio {tp / tf:.2f}")
    first = make_log(LINES, True, 1 << 44)
    second = make_log(LINES, True, 1 << 45)
    p = NixLogParser()
    for c in chunks(first):
        p.feed(c)
    gc.collect()
    r1 = rss_mb()
    for c in chunks(second):
        p.feed(c)
    p.close()
    gc.collect()
    r2 = rss_mb()
    print(f"rss after {LINES} lines: {r1:.1f} MiB, after {2 * LINES}: {r2:.1f} MiB "
          f"({len(p.derivations)} derivations, {p.log_line_count} log lines)")
    print(f"RESULT ratio_28={ratios['28']:.2f} ratio_226={ratios['226']:.2f} rss_growth_mb={r2 - r1:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
