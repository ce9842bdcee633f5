"""Property tests: nothing fed to the parser makes it raise, and chunking never changes the result."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nixdeck.core.nix.parselog import LogSummary
from nixdeck.core.nix.parser import NixLogParser
from nixlog_helpers import all_samples, sample

_SAMPLE_LINES = [ln for name in all_samples() for ln in sample(name).split(b"\n") if ln][:400]

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)
_records = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["start", "stop", "result", "msg", "setPhase", "x"]),
        "id": st.integers(0, 5) | _json_values,
        "type": st.sampled_from([0, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 999]) | _json_values,
        "level": st.integers(-3, 9) | _json_values,
        "fields": st.lists(st.integers(-5, 2**64) | st.text(max_size=30) | _json_values, max_size=6) | _json_values,
        "parent": st.integers(0, 5) | _json_values,
        "msg": st.text(max_size=80) | _json_values,
        "raw_msg": st.text(max_size=40) | _json_values,
        "file": st.text(max_size=30) | _json_values,
        "line": _json_values,
        "column": _json_values,
        "trace": st.lists(st.dictionaries(st.sampled_from(["raw_msg", "file", "line", "column"]), _json_values),
                          max_size=3) | _json_values,
        "text": st.text(max_size=30) | _json_values,
    },
)


def _line_of(rec: dict[str, object]) -> bytes:
    return b"@nix " + json.dumps(rec).encode()


_lines = st.one_of(
    _records.map(_line_of),
    _records.map(_line_of).map(lambda b: b[: len(b) // 2]),  # truncated JSON
    st.sampled_from(_SAMPLE_LINES),
    st.binary(max_size=200),
    st.text(max_size=100).map(str.encode),
    st.sampled_from([b"error: boom", b"warning: w", b"trace: t", b"   indented", b"building '/nix/store/x.drv'...",
                     b"x> y", b"copying 3 paths...", b"@nix ", b"@nix {", b"\r", b"\x1b[31m"]),
)


def _run(chunks: list[bytes]) -> dict[str, object]:
    p = NixLogParser(log_lines_kept=5, messages_kept=20)
    for c in chunks:
        p.feed(c)
        p.progress_snapshot()
    p.close()
    p.progress_snapshot()
    s = LogSummary.from_parser(p)
    s.render_text()
    return s.to_json()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines, max_size=40), st.integers(1, 50))
def test_lines_never_raise_and_chunking_is_irrelevant(lines: list[bytes], step: int) -> None:
    data = b"\n".join(lines)
    whole = _run([data])
    assert _run([data[i : i + step] for i in range(0, len(data), step)]) == whole


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    _run(chunks)


def test_huge_random_line_never_raises() -> None:
    _run([b"@nix {" + b"\x00\xff[" * 1_000_000, b"\n", b"@nix {\"action\":\"msg\",\"msg\":\"" + b"a" * 5_000_000])
