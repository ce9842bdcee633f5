"""The internal-json / plain stderr parser against real Nix 2.8 and 2.26 samples."""

from __future__ import annotations

import pytest

from nixdeck.core.nix.events import DerivationChanged, LogLine, MessageEvent
from nixdeck.core.nix.parser import NixLogParser
from nixlog_helpers import all_samples, parse, sample, summary


def _comparable(name: str) -> dict[str, object]:
    """The parts of a summary that must not depend on the Nix version."""
    j = summary(name).to_json()
    drvs = [(d["drv_path"], d["state"], d["host"], d["last_log_lines"]) for d in j["derivations"]]
    strip = lambda ms: [(m["kind"], m["message"]) for m in ms]  # noqa: E731
    return {"errors": strip(j["errors"]), "warnings": strip(j["warnings"]), "builds": j["builds"],
            "copies": j["copies"], "derivations": drvs}


@pytest.mark.parametrize("name", ["build-ok.internal-json", "build-ok.cached.internal-json",
                                  "warn-dirty.internal-json", "warn-unknown-setting.internal-json",
                                  "eval-undef.internal-json"])
def test_same_summary_from_28_and_226(name: str) -> None:
    a, b = _comparable(f"nix-2.8/{name}"), _comparable(f"nix-2.26/{name}")
    if name.startswith("warn-dirty"):  # the samples built different devices; compare the rest
        a.pop("derivations"), b.pop("derivations"), a.pop("builds"), b.pop("builds")
    assert a == b


def test_build_ok_28() -> None:
    s = summary("nix-2.8/build-ok.internal-json").to_json()
    assert s["errors"] == [] and s["warnings"] == []
    assert s["builds"] == {"done": 3, "expected": 3, "running": 0, "failed": 0}
    names = [(d["name"], d["state"], d["last_log_lines"]) for d in s["derivations"]]
    assert names == [
        ("etc-dev1", "done", ["generating /etc for dev1"]),
        ("linux-fake-6.6", "done", ["building fake kernel for dev1"]),
        ("nixos-system-dev1-1", "done", ["building the system configuration for dev1..."]),
    ]


def test_build_fail_28() -> None:
    p = parse(sample("nix-2.8/build-fail.internal-json"))
    (err,) = p.messages["error"]
    assert err.message == ("builder for '/nix/store/0ryg0hx9bxrwx8wdwh3aksnvssa0qv63-nixos-system-broken-1.drv'"
                           " failed with exit code 1")
    assert "\x1b" not in err.text
    (d,) = p.derivations.values()
    assert d.state == "failed"
    assert d.last_lines() == ["building the system configuration for broken...",
                              "error: simulated builder failure for broken"]
    assert p.progress_snapshot().builds.failed == 1


@pytest.mark.parametrize("version", ["nix-2.8", "nix-2.26"])
def test_build_fail_plain(version: str) -> None:
    s = summary(f"{version}/build-fail.plain").to_json()
    states = {d["name"]: d["state"] for d in s["derivations"]}
    assert states == {"etc-broken": "done", "linux-fake-6.6": "done", "nixos-system-broken-1": "failed"}
    assert s["derivations"][2]["last_log_lines"][-1] == "error: simulated builder failure for broken"
    assert s["builds"]["failed"] == 1 and s["builds"]["done"] == 2
    assert len(s["errors"]) == 1


@pytest.mark.parametrize("version", ["nix-2.8", "nix-2.26"])
def test_build_fail_no_l_keeps_last_lines_in_error_text(version: str) -> None:
    (err,) = summary(f"{version}/build-fail-noL.plain").errors
    assert err.message.endswith("failed with exit code 1")
    assert "> error: simulated builder failure for broken" in err.text


def test_eval_type_28_location_and_trace() -> None:
    (err,) = parse(sample("nix-2.8/eval-type.show-trace.internal-json")).messages["error"]
    assert err.message == "cannot coerce an integer to a string"
    assert (err.file, err.line, err.column) == ("/nix/store/7nhnggj8wx09j117kapp3nj3k73gvavc-source/flake.nix", 21, 37)
    (fr,) = err.trace
    assert fr.message == "while evaluating the attribute 'args' of the derivation 'x'"
    assert (fr.line, fr.column) == (20, 15)


def test_eval_type_28_show_trace_hint_is_not_an_error() -> None:
    p = parse(sample("nix-2.8/eval-type.internal-json"))
    assert len(p.messages["error"]) == 1
    assert [m.message for m in p.messages["notice"]][0].startswith("(use '--show-trace'")


def test_eval_type_226_location_from_innermost_frame() -> None:
    (err,) = parse(sample("nix-2.26/eval-type.internal-json")).messages["error"]
    assert err.message == "cannot coerce an integer to a string: 42"
    assert err.file == "/nix/store/ilh3fl83dayvfa92kv1pfnx7hbh1j475-source/flake.nix"
    assert (err.line, err.column) == (23, 15)
    assert [f.message for f in err.trace] == [
        "while calling the 'derivationStrict' builtin",
        "while evaluating derivation 'x'",
        "while evaluating attribute 'args' of derivation 'x'",
    ]
    assert err.trace[0].file == "<nix/derivation-internal.nix>"


def test_eval_undef_226_glued_location() -> None:
    (err,) = parse(sample("nix-2.26/eval-undef.internal-json")).messages["error"]
    assert err.file == "/nix/store/y0g833jr89nh4y8p3zz904nxzsr2y5bn-source/flake.nix"
    assert (err.line, err.column) == (4, 58)
    assert err.message == "undefined variable 'hostNmae'"


def test_glued_location_in_trace_frames() -> None:
    """Nix lists trace frames innermost first; the location is the innermost frame in a real file."""
    line = (b'@nix {"action":"msg","level":0,"msg":"error: x","raw_msg":"x","file":null,"line":null,'
            b'"column":null,"trace":[{"raw_msg":"builtin","file":"<nix/derivation-internal.nix>:37:12"},'
            b'{"raw_msg":"inner","file":"/b.nix:3:4"},{"raw_msg":"outer","file":"/a.nix:1:2"}]}\n')
    (err,) = parse(line).messages["error"]
    assert (err.file, err.line, err.column) == ("/b.nix", 3, 4)
    assert [(f.file, f.line, f.column) for f in err.trace] == [
        ("<nix/derivation-internal.nix>", 37, 12), ("/b.nix", 3, 4), ("/a.nix", 1, 2)]


def test_226_type_error_with_trace_points_at_the_users_file() -> None:
    """Real Nix 2.26 --show-trace output: the error's own position is inside Nix's derivation builtin;
    the location shown is the innermost frame in the user's tree."""
    (err,) = summary("nix-2.26/eval-type.show-trace.internal-json").errors
    assert err.message.startswith("cannot coerce an integer to a string")
    assert err.file is not None and err.file.endswith("-source/devices/bad-type.nix"), err.file
    assert (err.line, err.column) == (6, 47)
    assert len(err.trace) >= 5 and any("from call site" in f.message for f in err.trace)


@pytest.mark.parametrize("name", ["nix-2.8/eval-syntax.internal-json", "nix-2.8/eval-syntax.plain",
                                  "nix-2.26/eval-syntax.plain"])
def test_eval_syntax(name: str) -> None:
    (err,) = summary(name).errors
    assert err.message == "syntax error, unexpected '}', expecting ';'"
    assert (err.line, err.column) == (4, 108)


@pytest.mark.parametrize("name", ["nix-2.8/eval-type.plain", "nix-2.8/eval-type.show-trace.plain"])
def test_plain_28_type_error(name: str) -> None:
    (err,) = summary(name).errors
    assert err.message == "cannot coerce an integer to a string"
    assert (err.line, err.column) == (21, 37)


def test_plain_226_throw_location_from_frame() -> None:
    (err,) = summary("nix-2.26/eval-throw.plain").errors
    assert err.message == "simulated evaluation failure in thrower"
    assert (err.line, err.column) == (26, 54)


@pytest.mark.parametrize("name", ["nix-2.8/warn-trace.internal-json", "nix-2.8/warn-trace.plain",
                                  "nix-2.8/warn-trace.no-eval-cache.plain", "nix-2.26/warn-trace.plain"])
def test_trace_is_a_warning(name: str) -> None:
    s = summary(name)
    assert s.errors == []
    assert [w.message for w in s.warnings] == ["trace: evaluation warning: warner uses a deprecated option"]


@pytest.mark.parametrize("name", ["nix-2.8/warn-dirty.internal-json", "nix-2.26/warn-dirty.internal-json",
                                  "nix-2.8/warn-dirty.plain", "nix-2.26/warn-dirty.plain"])
def test_dirty_tree_is_a_warning(name: str) -> None:
    s = summary(name)
    assert s.errors == [] and s.dirty_tree
    assert s.to_json()["dirty_tree"] is True


def test_unknown_setting_plain_line_in_json_stream() -> None:
    p = parse(sample("nix-2.8/warn-unknown-setting.internal-json"))
    assert [w.message for w in p.messages["warning"]] == ["unknown setting 'no-such-setting'"]
    assert p.format == "mixed"


def test_ssh_lines_kept_as_stderr() -> None:
    s = summary("nix-2.8/copy-sshng-conn-refused.internal-json")
    assert s.stderr == ["ssh: connect to host 127.0.0.1 port 22999: Connection refused"]
    (err,) = s.errors
    assert err.message == "cannot open connection to remote store 'ssh-ng://root@127.0.0.1': error: unexpected end-of-file"


def test_copy_nochecksigs_counts_paths() -> None:
    s = summary("nix-2.8/copy-sshng-nochecksigs.internal-json").to_json()
    assert s["copies"]["paths"]["done"] == 3 and s["copies"]["paths"]["expected"] == 3
    assert s["errors"] == []


def test_copy_unsigned_fail() -> None:
    (err,) = summary("nix-2.8/copy-sshng-unsigned-fail.internal-json").errors
    assert "lacks a valid signature" in err.message


@pytest.mark.parametrize("name", ["nix-2.8/cancel-sigterm.internal-json", "nix-2.8/cancel-sigint.internal-json"])
def test_cancel(name: str) -> None:
    s = summary(name)
    assert s.interrupted
    assert [d.state for d in s.derivations] == ["cancelled"]
    assert [e.message for e in s.errors] == ["interrupted by the user"]


def test_flake_update_226_nogit_errors_and_warning() -> None:
    s = summary("nix-2.26/nogit-flake-update.internal-json")
    assert [e.message for e in s.errors][-1] == "program 'git' failed with exit code 1"
    assert s.warnings[0].message.startswith("updating lock file")
    assert "Updated input 'fakepkgs'" in s.warnings[0].message


def test_untracked_file_and_missing_attribute() -> None:
    s = summary("nix-2.8/eval-untracked-file.plain")
    assert s.untracked_files == ["newfile.nix"]
    m = summary("nix-2.8/eval-missing-attr.internal-json").missing_attribute
    assert m is not None and (m.device, m.attribute) == ("nosuch", "config.system.build.toplevel")


@pytest.mark.parametrize("name", all_samples())
def test_every_sample_chunking_does_not_matter(name: str) -> None:
    data = sample(name)
    whole = summary(name).to_json()
    for chunk in (1, 7, 64):
        p = parse(data, chunk=chunk)
        from nixdeck.core.nix.parselog import LogSummary

        assert LogSummary.from_parser(p).to_json() == whole


def test_feed_returns_events_as_lines_complete() -> None:
    data = sample("nix-2.26/build-ok.internal-json")
    p = NixLogParser()
    cut = data.index(b"generating /etc") + 5
    first = p.feed(data[:cut])
    assert not any(isinstance(e, LogLine) for e in first)
    assert p.progress_snapshot().running_builds[0][0].endswith("etc-dev1.drv")
    second = p.feed(data[cut:])
    logs = [e for e in second if isinstance(e, LogLine)]
    assert logs[0].line == "generating /etc for dev1" and logs[0].drv_path.endswith("etc-dev1.drv")  # type: ignore[union-attr]
    assert any(isinstance(e, DerivationChanged) and e.state == "done" for e in second)
    assert any(isinstance(e, MessageEvent) for e in first)
    v = p.progress_version
    p.close()
    assert p.progress_version == v
    assert p.progress_snapshot().builds.done == 3


def _rec(s: str) -> bytes:
    return b"@nix " + s.encode() + b"\n"


def test_remote_host_phase_post_build_and_progress() -> None:
    drv = "/nix/store/" + "a" * 32 + "-hello-1.0.drv"
    log = b"".join([
        _rec('{"action":"start","id":1,"level":0,"text":"","type":104,"parent":0}'),
        _rec('{"action":"start","id":2,"level":0,"text":"","type":102,"parent":0}'),
        _rec('{"action":"result","id":2,"type":106,"fields":[100,5000]}'),
        _rec('{"action":"result","id":1,"type":105,"fields":[0,2,1,0]}'),
        _rec('{"action":"start","id":3,"level":3,"text":"building","type":105,"parent":1,'
             f'"fields":["{drv}","ssh-ng://builder1",1,1]}}'),
        _rec('{"action":"result","id":3,"type":104,"fields":["buildPhase"]}'),
        _rec('{"action":"result","id":3,"type":101,"fields":["make all"]}'),
        _rec('{"action":"start","id":4,"level":3,"text":"copying","type":100,"parent":3,"fields":["/nix/store/x","a","b"]}'),
        _rec('{"action":"result","id":4,"type":105,"fields":[1000,4000,0,0]}'),
        _rec('{"action":"start","id":5,"level":3,"text":"dl","type":101,"parent":0,"fields":["https://x"]}'),
        _rec('{"action":"result","id":5,"type":105,"fields":[10,100,0,0]}'),
    ])
    p = NixLogParser()
    p.feed(log)
    snap = p.progress_snapshot()
    assert snap.builds.expected == 2 and snap.builds.running == 1
    assert (snap.copied_bytes.done, snap.copied_bytes.expected) == (1000, 5000)
    assert (snap.downloaded_bytes.done, snap.downloaded_bytes.expected) == (10, 100)
    assert snap.running_builds == ((drv, "ssh-ng://builder1", "buildPhase"),)
    assert [a.id for a in p.children(1)] == [3]
    assert [a.id for a in p.children(3)] == [4]
    p.feed(b"".join([
        _rec('{"action":"stop","id":4}'),
        _rec('{"action":"result","id":1,"type":105,"fields":[1,2,0,0]}'),
        _rec('{"action":"stop","id":3}'),
        _rec('{"action":"start","id":6,"level":3,"text":"hook","type":110,"fields":["' + drv + '"]}'),
        _rec('{"action":"result","id":6,"type":107,"fields":["signing"]}'),
        _rec('{"action":"stop","id":6}'),
    ]))
    p.close()
    d = p.derivations[drv]
    assert (d.state, d.host, d.phase) == ("done", "ssh-ng://builder1", "buildPhase")
    assert d.last_lines() == ["make all", "signing"]
    snap = p.progress_snapshot()
    assert (snap.copied_bytes.done, snap.copied_bytes.expected) == (1000, 5000)
    j = summary_json_of(p)
    assert j["derivations"][0]["host"] == "ssh-ng://builder1"


def summary_json_of(p: NixLogParser) -> dict[str, object]:
    from nixdeck.core.nix.parselog import LogSummary

    return LogSummary.from_parser(p).to_json()


def test_set_expected_is_retracted_on_stop() -> None:
    p = NixLogParser()
    p.feed(_rec('{"action":"start","id":1,"type":102}') + _rec('{"action":"result","id":1,"type":106,"fields":[104,7]}'))
    assert p.progress_snapshot().builds.expected == 7
    p.feed(_rec('{"action":"result","id":1,"type":106,"fields":[104,3]}'))
    assert p.progress_snapshot().builds.expected == 3
    p.feed(_rec('{"action":"stop","id":1}'))
    assert p.progress_snapshot().builds.expected == 0


def test_unknown_things_are_ignored() -> None:
    p = NixLogParser()
    p.feed(b"".join([
        _rec('{"action":"start","id":9,"type":999,"fields":[{"x":1}]}'),
        _rec('{"action":"result","id":9,"type":777,"fields":[1]}'),
        _rec('{"action":"result","id":12345,"type":101,"fields":["orphan line"]}'),
        _rec('{"action":"result","id":12345,"type":105,"fields":[1,2,3,4]}'),
        _rec('{"action":"stop","id":424242}'),
        _rec('{"action":"dance"}'),
        _rec('[1,2,3]'),
        _rec('{"action":"result","id":[1],"type":105}'),
        b"@nix {broken json\n",
        b"\xff\xfe random \x00 bytes\n",
    ]))
    p.close()
    assert list(p.stray_log) == ["orphan line"]
    assert p.bad_lines >= 2
    assert p.messages["error"] == type(p.messages["error"])()


def test_log_tail_is_bounded_but_events_carry_every_line() -> None:
    drv = "/nix/store/" + "b" * 32 + "-big.drv"
    p = NixLogParser(log_lines_kept=10, done_lines_kept=3)
    events = p.feed(_rec(f'{{"action":"start","id":1,"type":105,"fields":["{drv}","",1,1]}}'))
    for i in range(100):
        events += p.feed(_rec(f'{{"action":"result","id":1,"type":101,"fields":["line {i}"]}}'))
    assert p.log_lines(drv) == [f"line {i}" for i in range(90, 100)]
    assert sum(isinstance(e, LogLine) for e in events) == 100
    assert p.derivations[drv].line_count == 100
    p.feed(_rec('{"action":"stop","id":1}'))
    p.close()
    assert p.log_lines(drv) == ["line 97", "line 98", "line 99"]


def test_huge_line_and_split_utf8() -> None:
    big = "x" * (10 * 1024 * 1024)
    drv = "/nix/store/" + "c" * 32 + "-u.drv"
    data = (_rec(f'{{"action":"start","id":1,"type":105,"fields":["{drv}","",1,1]}}')
            + _rec(f'{{"action":"result","id":1,"type":101,"fields":["{big}"]}}')
            + _rec('{"action":"result","id":1,"type":101,"fields":["h\u00e9llo \u2192"]}')
            + b"x" * (3 * 1024 * 1024) + b"\n")
    p = parse(data, chunk=65536)
    assert p.derivations[drv].last_lines()[0] == big
    assert p.derivations[drv].last_lines()[1] == "h\u00e9llo \u2192"
    assert len(p.stderr_lines[0]) == 3 * 1024 * 1024


def test_unterminated_last_line_is_parsed_on_close() -> None:
    p = NixLogParser()
    assert p.feed(b'@nix {"action":"msg","level":0,"msg":"error: boom","raw_msg":"boom"}') == []
    events = p.close()
    assert [e.message.message for e in events if isinstance(e, MessageEvent)] == ["boom"]
    assert p.feed(b"more\n") == [] and p.close() == []


def test_crlf_and_ansi_plain() -> None:
    p = parse(b"\x1b[31;1merror:\x1b[0m cannot connect to 'root@h'\r\nHost key verification failed.\r\n")
    assert [m.message for m in p.messages["error"]] == ["cannot connect to 'root@h'"]
    assert list(p.stderr_lines) == ["Host key verification failed."]
