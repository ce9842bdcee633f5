"""The parser on every Nix: real output recorded with 2.8, 2.26 and 2.34 (tests/nixroots/record_samples.py,
saved as tests/data/nixlogs/nix-*/matrix-*), and hand-made records for what cannot run here
(Determinate Nix, Lix, 2.28's interleaving, upstream's FetchToStore, systemd's `<3>` prefix)."""

from __future__ import annotations

import orjson
import pytest

from nixdeck.core.nix.events import StderrLine
from nixdeck.core.nix.messages import TRACE_HEAD, TRACE_TAIL, message_from_json, normalise_build_failure
from nixdeck.core.nix.parselog import LogSummary
from nixdeck.core.nix.parser import NixLogParser
from nixdeck.core.nix.progress import DONE, FAILED
from nixlog_helpers import parse, sample, summary

VERSIONS = ["nix-2.8", "nix-2.26", "nix-2.34"]


def rec(**obj: object) -> bytes:
    return b"@nix " + orjson.dumps(obj) + b"\n"


# --- real output of each version ------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_copy_of_three_paths_over_ssh_ng_counts_three_of_three(version: str) -> None:
    # 2.26/2.34 report CopyPaths progress before each path is sent (2/2 at the end); 2.8 none at all
    s = summary(f"{version}/matrix-copy-ssh-ng-3-paths-to-nix28.internal-json")
    paths = s.progress.copied_paths
    assert (paths.done, paths.expected) == (3, 3)
    assert not s.errors


@pytest.mark.parametrize("version", VERSIONS)
def test_failed_build_reads_the_same_on_every_version(version: str) -> None:
    s = summary(f"{version}/matrix-build-fail.internal-json")
    msgs = [e.message for e in s.errors]
    assert len(msgs) == 2
    assert msgs[0].startswith("builder for '/nix/store/") and msgs[0].endswith("dep-fail-" + msgs[0].split(
        "dep-fail-")[1].split(".drv")[0] + ".drv' failed with exit code 1")
    assert msgs[1].startswith("1 dependencies of derivation '") and msgs[1].endswith("' failed to build")
    states = {d.name.split("-fail-")[0]: d.state for d in s.derivations}
    assert states == {"dep": FAILED, "top": FAILED}
    assert "simulated compiler error" in "\n".join(d for drv in s.derivations for d in drv.last_lines())


def test_234_cannot_build_is_normalised_but_its_text_kept() -> None:
    s = summary("nix-2.34/matrix-build-fail.internal-json")
    assert "Reason: builder failed with exit code 1" in s.errors[0].text  # what Nix printed stays
    assert normalise_build_failure("Cannot build '/nix/store/x-a.drv'.\nReason: 2 dependencies failed.") == (
        "2 dependencies of derivation '/nix/store/x-a.drv' failed to build")
    assert normalise_build_failure("Cannot build '/nix/store/x-a.drv'.\nReason: timed out after 10 s.") == (
        "Cannot build '/nix/store/x-a.drv': timed out after 10 s")


@pytest.mark.parametrize("version", VERSIONS)
def test_successful_build_same_counts(version: str) -> None:
    s = summary(f"{version}/matrix-build-ok.internal-json")
    assert (s.progress.builds.done, s.progress.builds.failed) == (2, 0)
    assert sorted(d.state for d in s.derivations) == [DONE, DONE]
    assert not s.errors


@pytest.mark.parametrize("version", VERSIONS)
def test_undefined_variable_same_location(version: str) -> None:
    (e,) = summary(f"{version}/matrix-eval-undef.internal-json").errors
    assert e.message == "undefined variable 'hostNmae'"
    assert (e.file or "").endswith("-source/flake.nix") and (e.line, e.column) == (3, 38)


@pytest.mark.parametrize("version", VERSIONS)
def test_untracked_file_on_every_version(version: str) -> None:
    # 2.8 "getting status of", 2.26 "path ... does not exist", 2.34 "... is not tracked by Git"
    assert summary(f"{version}/matrix-eval-untracked.internal-json").untracked_files == ["extra.nix"]


def test_234_lazy_trees_name_the_real_file() -> None:
    (e,) = summary("nix-2.34/matrix-eval-untracked.internal-json").errors
    assert e.file is not None and e.file.endswith("/untracked/flake.nix") and not e.file.startswith("/nix/store")


@pytest.mark.parametrize("version", VERSIONS)
def test_trace_of_thousands_of_frames_is_capped_with_the_count_kept(version: str) -> None:
    s = summary(f"{version}/matrix-eval-deep-trace.show-trace.internal-json")
    (e,) = s.errors
    assert e.message == "deep recursion bottom"
    assert len(e.trace) == TRACE_HEAD + TRACE_TAIL
    assert e.trace_frames > 2400
    assert e.to_json()["trace_frames"] == e.trace_frames
    assert (e.file or "").endswith("flake.nix") and e.line == 3
    assert len(e.text) <= 70 * 1024  # 2.8 renders every frame (1 MB): the text is cut too
    assert f"({e.trace_frames - len(e.trace)} more frames not shown)" in s.render_text()


# --- hand-made records: Determinate Nix, Lix, upstream master, 2.28, systemd ------------------------

BUILD_ID = (7 << 32) + 1
DRV = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-1.0.drv"


def _build_start(**extra: object) -> bytes:
    return rec(action="start", id=BUILD_ID, level=3, parent=0, type=105, text=f"building '{DRV}'",
               fields=[DRV, "", 1, 1], **extra)


def test_determinate_build_result_payload_gives_times_and_state() -> None:
    sid = "0b6f4c"  # Determinate 3.20+: a session id on every record
    payload = {"status": "Built", "startTime": 1700000000, "stopTime": 1700000012, "timesBuilt": 1,
               "builtOutputs": {"out": {"outPath": "/nix/store/xyz-hello-1.0"}}}
    p = parse(_build_start(sid=sid) + rec(action="result", id=BUILD_ID, type=110, payload=payload, sid=sid)
              + rec(action="stop", id=BUILD_ID, sid=sid))
    d = p.derivations[DRV]
    assert d.state == DONE
    assert d.result is not None and (d.result.start_time, d.result.stop_time) == (1700000000, 1700000012)
    assert d.to_json()["build_result"]["stop_time"] == 1700000012
    text = LogSummary.from_parser(p).render_text()
    assert "built in 12 s, status Built" in text
    assert p.bad_lines == 0


def test_determinate_failed_build_result_marks_the_derivation_failed() -> None:
    p = parse(_build_start() + rec(action="result", id=BUILD_ID, type=110,
                                   payload={"status": "PermanentFailure", "startTime": 5, "stopTime": 9})
              + rec(action="stop", id=BUILD_ID))
    assert p.derivations[DRV].state == FAILED


def test_result_109_hash_mismatch_payload_vs_upstream_fetch_to_store_fields() -> None:
    fetch = (9 << 32) + 3
    data = (
        rec(action="start", id=fetch, level=3, parent=0, type=113, text="copying to the store",
            fields=["/home/u/src", False])
        + rec(action="result", id=fetch, type=109, fields=["/nix/store/abc-source"])  # upstream 2.36pre
        + rec(action="result", id=BUILD_ID, type=109,  # Determinate: HashMismatch
              payload={"drvPath": DRV, "specified": "sha256-AAA=", "got": "sha256-BBB="})
        + rec(action="stop", id=fetch)
    )
    p = parse(data)
    assert p.hash_mismatch_count == 1 and p.hash_mismatches[0]["got"] == "sha256-BBB="
    assert LogSummary.from_parser(p).to_json()["counts"]["hash_mismatches"] == 1
    assert p.bad_lines == 0 and not p.messages["error"]


def test_fetch_tree_112_and_fetch_status_108() -> None:
    act = (3 << 32) + 9
    p = NixLogParser()
    p.feed(rec(action="start", id=act, level=3, parent=0, type=112, text="fetching github:NixOS/nixpkgs",
               fields=[]))
    p.feed(rec(action="result", id=act, type=108, fields=["unpacking 12 MiB"]))
    (a,) = p.activities()
    assert a.type == 112 and a.status == "unpacking 12 MiB"
    p.feed(rec(action="stop", id=act))
    p.close()
    assert p.bad_lines == 0 and not p.activities()


def test_syslog_prefix_under_systemd() -> None:
    data = b"<3>" + _build_start() + b"<3>" + rec(action="stop", id=BUILD_ID) + b"<4>warning: unknown setting 'x'\n"
    p = parse(data)
    assert DRV in p.derivations and p.json_lines == 2 and p.bad_lines == 0
    assert [w.message for w in p.messages["warning"]] == ["unknown setting 'x'"]


def test_two_records_in_one_line_228() -> None:
    a = rec(action="msg", level=1, msg="warning: first").rstrip(b"\n")
    b = rec(action="msg", level=1, msg="warning: second").rstrip(b"\n")
    p = parse(a + b + b"\n\n")  # each record, then each newline
    assert [m.message for m in p.messages["warning"]] == ["first", "second"]
    assert p.interleaved_lines == 1 and p.bad_lines == 0


def test_record_cut_in_two_by_another_is_put_together() -> None:
    a = rec(action="msg", level=1, msg="warning: the outer one")
    b = rec(action="msg", level=1, msg="warning: inner")
    cut = 20
    p = parse(a[:cut] + b + a[cut:])
    assert sorted(m.message for m in p.messages["warning"]) == ["inner", "the outer one"]
    assert p.bad_lines == 0


def test_virtual_paths_and_origin_line_col() -> None:
    # 2.20+ and Lix: `file` is `origin:line:col`, maybe a virtual path of an input or of Nix itself
    obj = {"action": "msg", "level": 0, "msg": "error: boom", "raw_msg": "boom",
           "file": "\u00abgithub:NixOS/nixpkgs/0123abc\u00bb/lib/modules.nix:12:3", "line": None, "column": None,
           "trace": [{"raw_msg": "while evaluating", "file": "\u00abnix-internal\u00bb/derivation-internal.nix:9:12"},
                     {"raw_msg": "from the user's file", "file": "/home/u/fleet/hosts/web.nix:4:5"}]}
    m = message_from_json(obj)
    assert (m.file, m.line, m.column) == ("/home/u/fleet/hosts/web.nix", 4, 5)  # the file a person can open
    assert m.trace[0].file == "\u00abnix-internal\u00bb/derivation-internal.nix" and m.trace[0].line == 9
    only_virtual = message_from_json({**obj, "trace": []})
    assert (only_virtual.file, only_virtual.line) == ("\u00abgithub:NixOS/nixpkgs/0123abc\u00bb/lib/modules.nix", 12)


def test_lix_records_stop_at_111_107_and_parse_like_nix() -> None:
    # Lix 2.9x: no 112/108, `file` glued, trace frames with all keys; parsed like upstream 2.20+
    lix = (
        rec(action="start", id=1, level=0, parent=0, text="", type=104)
        + rec(action="start", id=2, level=3, parent=1, type=111, text="waiting for a lock", fields=[])
        + rec(action="stop", id=2)
        + rec(action="msg", level=0, msg="error: undefined variable 'x'", raw_msg="undefined variable 'x'",
              file="/srv/fleet/flake.nix:3:7", line=3, column=7, trace=[])
        + rec(action="stop", id=1)
    )
    p = parse(lix)
    (e,) = p.messages["error"]
    assert (e.message, e.file, e.line, e.column) == ("undefined variable 'x'", "/srv/fleet/flake.nix", 3, 7)
    assert p.bad_lines == 0


def test_hand_made_trace_of_five_thousand_frames() -> None:
    frames = [{"raw_msg": f"while calling f ({i})", "file": "/f/flake.nix", "line": i, "column": 1}
              for i in range(5000)]
    m = message_from_json({"action": "msg", "level": 0, "msg": "error: x", "raw_msg": "x", "trace": frames})
    assert len(m.trace) == TRACE_HEAD + TRACE_TAIL and m.trace_frames == 5000
    assert m.trace[0].line == 0 and m.trace[-1].line == 4999  # innermost and outermost kept


def test_unknown_types_and_keys_are_ignored() -> None:
    p = parse(rec(action="start", id=5, level=3, parent=0, type=999, text="future", fields=[], sid="s", x=1)
              + rec(action="result", id=5, type=777, payload={"a": 1}) + rec(action="stop", id=5))
    assert p.bad_lines == 0 and not p.messages["error"]


# --- bounded memory (issue 10 item 8) ----------------------------------------------------------------


def test_input_without_newlines_is_cut_and_counted() -> None:
    p = NixLogParser(max_line_bytes=1 << 20)
    chunk = b"z" * (256 * 1024)
    events = []
    for _ in range(40):  # 10 MiB, no newline
        events += p.feed(chunk)
    assert p._framer._pending_len <= (1 << 20) + len(chunk)  # never more than one record buffered
    events += p.feed(b"\nafter\n")
    events += p.close()
    assert p.cut_lines == 1 and p.cut_bytes == 40 * len(chunk) - 4096
    notes = [e.text for e in events if isinstance(e, StderrLine)]
    assert notes[0].startswith(f"[a line of {40 * len(chunk)} bytes was cut") and notes[1] == "after"
    assert LogSummary.from_parser(p).to_json()["counts"]["cut_lines"] == 1


def test_records_after_a_cut_line_still_parse() -> None:
    p = NixLogParser(max_line_bytes=4096)
    p.feed(b"@nix {" + b"x" * 10000)
    p.feed(b"}\n" + rec(action="msg", level=1, msg="warning: still here"))
    p.close()
    assert [m.message for m in p.messages["warning"]] == ["still here"] and p.cut_lines == 1


def test_a_derivation_that_printed_nothing_holds_no_log_buffer() -> None:
    p = parse(_build_start() + rec(action="stop", id=BUILD_ID))
    d = p.derivations[DRV]
    assert d._tail is None and d.last_lines() == [] and d.to_json()["last_log_lines"] == []
    assert sample("nix-2.34/matrix-build-ok.internal-json")  # samples stay readable through the helper


@pytest.mark.qt_log_ignore("propagateSizeHints")
def test_build_result_times_reach_the_derivation_info(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nixdeck.core.nix.version import NixVersion
    from nixdeck.core.ops.nixrun import NixRun
    from nixdeck.ui.details_panes import DerivationsPane

    p = parse(_build_start() + rec(action="result", id=BUILD_ID, type=110,
                                   payload={"status": "Built", "startTime": 100, "stopTime": 142})
              + rec(action="stop", id=BUILD_ID))
    d = p.derivations[DRV]
    assert d.result is not None
    run = NixRun(None, p, LogSummary.from_parser(p), "nix", NixVersion(3, 20), None)  # type: ignore[arg-type]
    (entry,) = run.derivations()  # what a task's result carries to the window
    assert entry["build_result"]["start_time"] == 100
    pane = DerivationsPane()
    qtbot.addWidget(pane)
    pane.resize(900, 300)
    pane.set_derivations([entry])
    pane.show()
    assert pane.info.text().endswith("the builder printed no log — built in 42 s, status Built")
    pane.grab().save(str(tmp_path / "derivation-build-result.png"))


def test_many_distinct_derivations_keep_small_state() -> None:
    # issue 10 item 8: 500k derivations took 1.4 GB; a log-less derivation now costs ~300 bytes
    import tracemalloc

    n = 20000
    blob = b"".join(
        rec(action="start", id=(1 << 32) + i, level=3, parent=0, type=105, text="",
            fields=[f"/nix/store/{i:032d}-pkg-{i}.drv", "", 1, 1]) + rec(action="stop", id=(1 << 32) + i)
        for i in range(n)
    )
    tracemalloc.start()
    try:
        p = NixLogParser()
        for i in range(0, len(blob), 1 << 16):
            p.feed(blob[i : i + (1 << 16)])
        p.close()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(p.derivations) == n
    assert held / n < 450, f"{held / n:.0f} bytes per derivation"


def test_234_plain_cannot_build_block_is_normalised() -> None:
    drv = "/nix/store/fb6jbcvsgq6ir65rddk6p386iv9c0m8m-dep-fail-1.drv"
    plain_log = (f"error: Cannot build '{drv}'.\n       Reason: builder failed with exit code 1.\n"
                 "       Output paths:\n         /nix/store/h0blw5gzwarwc5hzkhgjwaad8ndlcvb7-dep-fail-1\n").encode()
    p = parse(plain_log)
    (e,) = p.messages["error"]
    assert e.message == f"builder for '{drv}' failed with exit code 1"
    assert p.derivations[drv].state == FAILED
