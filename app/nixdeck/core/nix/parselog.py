"""Summary of a whole Nix stderr log: what `nixdeck parse-log` prints and the details panes show.

`LogSummary.to_json()` is a documented, stable object (`"schema": 1`):

- `format`: `internal-json`, `plain`, `mixed` or `empty`
- `errors`, `warnings`, `notices`, `infos`: lists of messages, each
  `{level, kind, message, file, line, column, trace: [{message, file, line, column}], text}`
  (`message` is the short text, `text` the full rendering without colours; `trace:` output is a
  warning; a dirty git tree is a warning)
- `builds`: `{done, expected, running, failed}`
- `copies`: `{paths: {done, expected, running, failed}, bytes: {done, expected, running, failed}}`
- `downloads`: bytes `{done, expected, running, failed}`
- `derivations`: list of `{drv_path, name, state, host, machine, phase, log_lines, last_log_lines}`
  (`state`: building, done, failed, cancelled, unfinished; `host`/`machine`: the remote builder
  the Build activity named, null for local)
- `untracked_files`: files to `git add` (from "getting status of '/nix/store/...-source/x'")
- `missing_attribute`: `{device, attribute, flake}` or null
- `dirty_tree`, `interrupted`: booleans
- `stderr`: plain lines that were not Nix messages (ssh errors, ...)
- `counts`: `{debug_messages, log_lines, bad_lines, dropped_messages, cut_lines, cut_bytes,
  interleaved_lines, hash_mismatches}` (`cut_*`: lines longer than the parser keeps, only their head
  is kept as a stderr line; `interleaved_lines`: lines holding two records, Nix 2.28)
- `hash_mismatches`: Determinate Nix's HashMismatch payloads (result 109 with a `payload`)
- a derivation with Determinate Nix's BuildResult (result 110) also has `build_result`:
  `{status, start_time, stop_time, times_built}` (Unix seconds)
- a message whose trace was capped (thousands of frames) has `trace_frames`: how many Nix gave
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from nixdeck.core.nix.codes import KIND_DEBUG, KIND_ERROR, KIND_INFO, KIND_NOTICE, KIND_WARNING
from nixdeck.core.nix.errors import (
    MissingAttribute,
    StorePathMapper,
    git_add_hint,
    is_dirty_tree_warning,
    missing_attribute,
    untracked_files,
)
from nixdeck.core.nix.messages import NixMessage, TraceFrame, format_location
from nixdeck.core.nix.parser import NixLogParser
from nixdeck.core.nix.progress import FAILED, Counter, Derivation, ProgressSnapshot

SCHEMA_VERSION = 1


@dataclass
class LogSummary:
    """Everything a parsed log says. Build with `summarize` or `LogSummary.from_parser`."""

    format: str
    errors: list[NixMessage]
    warnings: list[NixMessage]
    notices: list[NixMessage]
    infos: list[NixMessage]
    progress: ProgressSnapshot
    derivations: list[Derivation]
    stderr: list[str]
    interrupted: bool
    flake_source: str | None
    counts: dict[str, int]
    last_lines: int | None = 20
    source_root: str | None = None
    hash_mismatches: list[dict[str, Any]] | None = None

    @classmethod
    def from_parser(
        cls, parser: NixLogParser, *, last_lines: int | None = 20, source_root: str | Path | None = None
    ) -> LogSummary:
        m = parser.messages
        counts = {
            "debug_messages": parser.message_counts[KIND_DEBUG],
            "log_lines": parser.log_line_count,
            "bad_lines": parser.bad_lines,
            "dropped_messages": sum(parser.message_counts[k] - len(m[k]) for k in m),
            "cut_lines": parser.cut_lines,
            "cut_bytes": parser.cut_bytes,
            "interleaved_lines": parser.interleaved_lines,
            "hash_mismatches": parser.hash_mismatch_count,
        }
        return cls(
            format=parser.format,
            errors=list(m[KIND_ERROR]),
            warnings=list(m[KIND_WARNING]),
            notices=list(m[KIND_NOTICE]),
            infos=list(m[KIND_INFO]),
            progress=parser.progress_snapshot(),
            derivations=list(parser.derivations.values()),
            stderr=list(parser.stderr_lines),
            interrupted=parser.interrupted,
            flake_source=parser.flake_source,
            counts=counts,
            last_lines=last_lines,
            source_root=str(source_root) if source_root is not None else None,
            hash_mismatches=list(parser.hash_mismatches),
        )

    # ------------------------------------------------------------ analysis

    @property
    def untracked_files(self) -> list[str]:
        return untracked_files(self.errors, self.source_root, self.flake_source)

    @property
    def missing_attribute(self) -> MissingAttribute | None:
        for e in self.errors:
            found = missing_attribute(e)
            if found is not None:
                return found
        return None

    @property
    def dirty_tree(self) -> bool:
        return any(is_dirty_tree_warning(w) for w in self.warnings)

    def _mapper(self) -> StorePathMapper | None:
        if self.source_root is None:
            return None
        return StorePathMapper(self.source_root, self.flake_source)

    def derivation_log(self, drv_path: str) -> list[str]:
        """All kept log lines of one derivation (the summary only shows the last `last_lines`)."""
        for d in self.derivations:
            if d.drv_path == drv_path:
                return d.last_lines(None)
        return []

    # -------------------------------------------------------------- output

    def _msg_json(self, msg: NixMessage, mapper: StorePathMapper | None) -> dict[str, Any]:
        out = msg.to_json()
        if mapper is not None:
            out["file"] = mapper.map_path(msg.file)
            out["text"] = mapper.map_text(msg.text)
            out["message"] = mapper.map_text(msg.message)
            for fr in out["trace"]:
                fr["file"] = mapper.map_path(fr["file"])
        return out

    def write_json(self, out: IO[bytes]) -> None:
        """`to_json()` written as indented JSON, the derivations one at a time: a log naming 500k
        derivations never holds all their JSON objects at once."""
        head = self.to_json(derivations=False)
        keys = list(head)
        at = keys.index("derivations")
        before = orjson.dumps({k: head[k] for k in keys[:at]}, option=orjson.OPT_INDENT_2)[:-2]  # no "\n}"
        after = orjson.dumps({k: head[k] for k in keys[at + 1 :]}, option=orjson.OPT_INDENT_2)[1:]  # no "{"
        out.write(before + b',\n  "derivations": [')
        for i, d in enumerate(self.derivations):
            out.write((b",\n    " if i else b"\n    ") + orjson.dumps(d.to_json(self.last_lines)))
        out.write((b"\n  ]," if self.derivations else b"],") + after + b"\n")

    def to_json(self, *, derivations: bool = True) -> dict[str, Any]:
        mapper = self._mapper()
        missing = self.missing_attribute
        p = self.progress
        return {
            "schema": SCHEMA_VERSION,
            "format": self.format,
            "errors": [self._msg_json(m, mapper) for m in self.errors],
            "warnings": [self._msg_json(m, mapper) for m in self.warnings],
            "notices": [self._msg_json(m, mapper) for m in self.notices],
            "infos": [self._msg_json(m, mapper) for m in self.infos],
            "builds": p.builds.to_json(),
            "copies": {"paths": p.copied_paths.to_json(), "bytes": p.copied_bytes.to_json()},
            "downloads": p.downloaded_bytes.to_json(),
            "derivations": [d.to_json(self.last_lines) for d in self.derivations] if derivations else [],
            "untracked_files": self.untracked_files,
            "missing_attribute": (
                {"device": missing.device, "attribute": missing.attribute, "flake": missing.flake}
                if missing is not None else None
            ),
            "dirty_tree": self.dirty_tree,
            "interrupted": self.interrupted,
            "stderr": self.stderr,
            "hash_mismatches": self.hash_mismatches or [],
            "counts": self.counts,
        }

    def render_text(self) -> str:
        """Human-readable summary, as in the task details panes."""
        mapper = self._mapper()

        def loc(file: str | None, line: int | None, column: int | None) -> str | None:
            return format_location(mapper.map_path(file) if mapper else file, line, column)

        def frame(fr: TraceFrame) -> str:
            where = loc(fr.file, fr.line, fr.column)
            return f"      \u2026 {fr.message}" + (f" ({where})" if where else "")

        out: list[str] = []
        for title, msgs in (("Errors", self.errors), ("Warnings", self.warnings)):
            if not msgs:
                continue
            out.append(f"{title} ({len(msgs)}):")
            for m in msgs:
                text = mapper.map_text(m.message) if mapper else m.message
                out.append(f"  {m.kind}: {text}")
                where = loc(m.file, m.line, m.column)
                if where:
                    out.append(f"      at {where}")
                out.extend(frame(fr) for fr in m.trace)
                if m.trace_frames > len(m.trace):
                    out.append(f"      \u2026 ({m.trace_frames - len(m.trace)} more frames not shown)")
            out.append("")
        files = self.untracked_files
        if files:
            out += [git_add_hint(files), ""]
        missing = self.missing_attribute
        if missing is not None:
            out += [missing.describe(), ""]
        if self.notices:
            out.append("Notices:")
            out.extend(f"  {m.message}" for m in self.notices)
            out.append("")
        p = self.progress
        if p.builds != Counter() or self.derivations:
            b = p.builds
            out.append(f"Builds: {b.done}/{b.expected} done, {b.running} running, {b.failed} failed")
        if p.copied_paths != Counter() or p.copied_bytes != Counter():
            c = p.copied_paths
            line = f"Copies: {c.done}/{c.expected} paths"
            if p.copied_bytes.expected:
                line += f", {_mib(p.copied_bytes.done)}/{_mib(p.copied_bytes.expected)} MiB"
            out.append(line)
        if p.downloaded_bytes.expected:
            d = p.downloaded_bytes
            out.append(f"Downloads: {_mib(d.done)}/{_mib(d.expected)} MiB")
        if self.interrupted:
            out.append("Interrupted.")
        if self.derivations:
            out.append("Derivations:")
            for drv in self.derivations:
                host = f" on {drv.host}" if drv.host else ""
                phase = f" [{drv.phase}]" if drv.phase and drv.state != "done" else ""
                took = f" [{drv.result.describe()}]" if drv.result is not None and drv.result.describe() else ""
                out.append(f"  {drv.state:<10} {drv.name}{host}{phase}{took}  ({drv.drv_path})")
                n = self.last_lines if drv.state == FAILED else min(self.last_lines or 0, 5)
                for ln in drv.last_lines(n):
                    out.append(f"      > {ln}")
        if self.stderr:
            out.append("Other output:")
            out.extend(f"  {s}" for s in self.stderr)
        if not out:
            out.append("Nothing to report.")
        return "\n".join(out).rstrip() + "\n"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def summarize(
    chunks: Iterable[bytes],
    *,
    last_lines: int | None = 20,
    source_root: str | Path | None = None,
    log_lines_kept: int | None = 1000,
) -> LogSummary:
    """Parse a whole log given as byte chunks and summarise it."""
    keep = log_lines_kept
    if last_lines is None:
        keep = None
    elif keep is not None:
        keep = max(keep, last_lines)
    parser = NixLogParser(log_lines_kept=keep, done_lines_kept=None if keep is None else max(50, last_lines or 0))
    for c in chunks:
        parser.feed(c)
    parser.close()
    return LogSummary.from_parser(parser, last_lines=last_lines, source_root=source_root)
