"""Running Nix inside a task: parsed messages, live progress, full build logs, clear failures.

`run_nix` is the one way operations call `nix`: stderr (`--log-format internal-json`) is fed to
`NixLogParser` chunk by chunk (the raw JSON is written to the process's stderr log file but not
streamed to views), parsed messages are stored as `MessageRecord`s in small batches, progress is
reported at most ~10x a second, and every build log line is appended to a per-derivation file
`<task log dir>/<process id>.drv-logs/<drv basename>.log` (lines of no known derivation go to
`_other.log`), so a 1 GB build log costs disk, not memory.

A non-zero exit is turned into the error a person can act on: `NixUserError` (a `UserError`: the
flake does not evaluate, a missing attribute naming device and attribute, files to `git add`) or
`NixBuildFailed` (a `TaskFailed`: a builder failed, a remote builder is unreachable, ...), with the
first Nix error message as the reason. `build_attrs` builds many attributes in one `nix build`.
"""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from nixdeck.core.nix.codes import KIND_DEBUG, KIND_ERROR, KIND_INFO, KIND_NOTICE, KIND_WARNING
from nixdeck.core.nix.commands import BuildSettings, NixCommand, merge_env, nix_env_additions
from nixdeck.core.nix.errors import StorePathMapper, git_add_hint, is_dirty_tree_warning, missing_attribute
from nixdeck.core.nix.events import DerivationChanged, LogLine, MessageEvent
from nixdeck.core.nix.messages import NixMessage, strip_ansi
from nixdeck.core.nix.parselog import LogSummary
from nixdeck.core.nix.parser import NixLogParser
from nixdeck.core.nix.progress import FAILED, ProgressSnapshot
from nixdeck.core.nix.version import NixVersion, detect_nix_async
from nixdeck.core.ops.dirty_tree import explain_dirty_tree
from nixdeck.core.tasks.context import ProcessResult, TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.model import MessageRecord, ProcessRecord

PROGRESS_INTERVAL = 0.1  # seconds between progress updates (at most ~10/s)
MESSAGE_BATCH = 50  # stored messages per batch
MESSAGE_INTERVAL = 0.25  # seconds a parsed message may wait before its batch is stored
WARNINGS_KEPT = 20  # Nix warnings turned into task warnings (the rest are only messages)
OPEN_LOG_FILES = 16  # per-derivation log files kept open at once

_EVAL_ERROR_RE = re.compile(
    r"syntax error|undefined variable|value is .* while a .* was expected|cannot coerce|infinite recursion"
    r"|called with unexpected argument|called without required argument|assertion .* failed"
    r"|does not provide attribute|attribute '[^']+' missing|getting status of|while evaluating|evaluation aborted"
    r"|is not a valid|cannot find flake|error: access to |path '[^']*' does not exist|opening file '",
    re.S,
)
#: Things Nix prints at warning level that are not problems: kept as info messages, no task warning.
_INFO_WARNING_RE = re.compile(
    r"^(?:warning: )?(?:creating lock file|updating lock file|committed new revision|not writing modified lock file)"
    r"|SQLite database '[^']*' is busy"
    r"|you don't have Internet access"  # a note about the machine (offline labs), not about the task
)
_IGNORED_ERROR_PREFIX = "error (ignored)"


def is_ignored_error(m: NixMessage) -> bool:
    """`error (ignored): ...` (e.g. a busy eval-cache database): Nix carried on; not the failure."""
    return strip_ansi(m.text or m.message).lstrip().startswith(_IGNORED_ERROR_PREFIX) or strip_ansi(
        m.message
    ).lstrip().startswith(_IGNORED_ERROR_PREFIX)


_BUILD_ERROR_RE = re.compile(r"builder for '|dependencies of derivation|build of '|Cannot build|failed to build")

_nix_cache: dict[tuple[str, str], tuple[str, NixVersion]] = {}


async def find_nix_cached(env: Mapping[str, str] | None = None, nix: str = "nix") -> tuple[str, NixVersion]:
    """Path and version of `nix` for this PATH, detected once per process (NixMissing/NixTooOld raise)."""
    path_value = (env or {}).get("PATH") or os.environ.get("PATH", os.defpath)
    key = (path_value, nix)
    hit = _nix_cache.get(key)
    if hit is not None:
        return hit
    full_env = {**os.environ, **(env or {})}
    found = await detect_nix_async(full_env, nix if os.sep in nix else None)
    _nix_cache[key] = found
    return found


class NixUserError(UserError):
    """A Nix failure caused by the project (evaluation error, missing attribute, untracked files)."""

    def __init__(self, message: str, run: NixRun | None = None, kind: str = "eval") -> None:
        super().__init__(message)
        self.run = run
        self.kind = kind


class NixBuildFailed(TaskFailed):
    """A Nix build (or another Nix call) failed for a reason other than the project's code."""

    def __init__(self, message: str, run: NixRun | None = None, kind: str = "build") -> None:
        super().__init__(message)
        self.run = run
        self.kind = kind


class PartialBuildError(TaskFailed):
    """Some attributes of a `build_attrs` call failed; `.built` maps the others to their out paths."""

    def __init__(self, message: str, built: dict[str, str], failed: dict[str, str],
                 derivations: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.built = built
        self.failed = failed
        self.derivations = derivations or []


class DrvLogWriter:
    """Appends build log lines to one file per derivation, keeping only a few files open."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._open: OrderedDict[str, IO[str]] = OrderedDict()
        self.files: dict[str, Path] = {}
        self.lines = 0
        self._flushed = 0

    def path_for(self, drv_path: str | None) -> Path:
        name = drv_path.rsplit("/", 1)[-1] if drv_path else "_other"
        return self.directory / f"{name}.log"

    def write(self, drv_path: str | None, line: str) -> None:
        key = drv_path or ""
        f = self._open.get(key)
        if f is None:
            if not self.files:
                self.directory.mkdir(parents=True, exist_ok=True)
            path = self.path_for(drv_path)
            self.files[key] = path
            f = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115 - kept open across calls
            self._open[key] = f
            if len(self._open) > OPEN_LOG_FILES:
                _, old = self._open.popitem(last=False)
                old.close()
        else:
            self._open.move_to_end(key)
        f.write(line)
        f.write("\n")
        self.lines += 1

    def flush(self) -> None:
        """Make the lines written so far visible to readers (views tail these files live)."""
        if self.lines != self._flushed:
            self._flushed = self.lines
            for f in self._open.values():
                f.flush()

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()


@dataclass
class NixRun:
    """A finished Nix call: its process, the parser's state and where the build logs went."""

    process: ProcessResult
    parser: NixLogParser
    summary: LogSummary
    nix: str
    version: NixVersion
    drv_log_dir: Path | None
    drv_log_files: dict[str, Path] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)
    error_records: list[MessageRecord] = field(default_factory=list)  # only with store_messages=False

    @property
    def ok(self) -> bool:
        return self.process.exit_code == 0

    @property
    def exit_code(self) -> int | None:
        return self.process.exit_code

    def stdout(self) -> str:
        return self.process.stdout_text()

    @property
    def errors(self) -> list[NixMessage]:
        """Nix's error messages, without `error (ignored)` ones."""
        return [e for e in self.summary.errors if not is_ignored_error(e)]

    def first_error(self) -> str | None:
        """The first real error message (ANSI stripped, store paths mapped to the project)."""
        mapper = self._mapper()
        for e in self.errors:
            text = strip_ansi(e.message).strip()
            if text:
                text = mapper.map_text(text) if mapper else text
                loc = e.location
                if loc and mapper:
                    loc = mapper.map_text(loc)
                return f"{text} (at {loc})" if loc and loc not in text else text
        return None

    def _mapper(self) -> StorePathMapper | None:
        root = self.summary.source_root
        return StorePathMapper(root, self.parser.flake_source) if root else None

    def derivations(self) -> list[dict[str, Any]]:
        """Every derivation this call built: drv, name, state, host (None: local), log lines and file."""
        out = []
        for d in self.parser.derivations.values():
            log = self.drv_log_files.get(d.drv_path)
            entry: dict[str, Any] = {"drv": d.drv_path, "name": d.name, "state": d.state, "host": d.host,
                                     "log_lines": d.line_count, "log_file": str(log) if log else None}
            if d.result is not None:  # Determinate Nix's BuildResult: when the build ran, how it ended
                entry["build_result"] = d.result.to_json()
                entry["build_info"] = d.result.describe()
            out.append(entry)
        return out

    def failure(self) -> TaskFailed:
        """The error to raise for a failed call (see the module docstring)."""
        return classify_failure(self)


def classify_failure(run: NixRun) -> TaskFailed:
    s = run.summary
    first = run.first_error()
    code = run.process.exit_code
    reason = first or (
        f"nix was killed by signal {run.process.outcome.signal}" if code is None else f"nix exited with code {code}"
    )
    untracked = s.untracked_files
    if untracked:
        return NixUserError(f"{git_add_hint(untracked)} ({reason})", run, "untracked")
    requested = run.requested[0] if len(run.requested) == 1 else None
    errors = run.errors
    for e in errors:
        miss = missing_attribute(e, requested)
        if miss is not None:
            if miss.device is None and requested:
                miss = missing_attribute(e, requested) or miss
            return NixUserError(miss.describe(), run, "missing_attribute")
    failed_drvs = [d for d in run.parser.derivations.values() if d.state == FAILED]
    texts = [strip_ansi(e.text or e.message) for e in errors]
    if failed_drvs or any(_BUILD_ERROR_RE.search(t) for t in texts):
        last = next((d.last_lines(1) for d in failed_drvs if d.line_count), None)
        if last and last[0].strip() and last[0].strip() not in reason:
            reason = f"{reason}; last log line: {strip_ansi(last[0]).strip()[:300]}"
        return NixBuildFailed(reason, run, "build")
    if any(e.file or e.trace or _EVAL_ERROR_RE.search(t) for e, t in zip(errors, texts, strict=True)):
        return NixUserError(reason, run, "eval")
    return NixBuildFailed(reason, run, "other")


def _installables(argv: Sequence[str]) -> list[str]:
    return [a for a in argv[1:] if "#" in a and not a.startswith("-")]


def phase_text(p: ProgressSnapshot) -> str:
    """`3/7 built · copying 120/340 MiB · building foo` from a progress snapshot."""
    parts: list[str] = []
    b = p.builds
    if b.expected or b.done:
        parts.append(f"{b.done}/{max(b.expected, b.done)} built" + (f", {b.failed} failed" if b.failed else ""))
    cb = p.copied_bytes
    if cb.running or (cb.expected and cb.done < cb.expected):
        parts.append(f"copying {cb.done / 2**20:.0f}/{max(cb.expected, cb.done) / 2**20:.0f} MiB")
    elif p.copied_paths.running:
        cp = p.copied_paths
        parts.append(f"copying {cp.done}/{max(cp.expected, cp.done)} paths")
    if p.running_builds:
        drv, host, phase = p.running_builds[0]
        name = drv.rsplit("/", 1)[-1][33:].removesuffix(".drv") or drv
        where = f" on {host}" if host else ""
        extra = f" +{len(p.running_builds) - 1}" if len(p.running_builds) > 1 else ""
        parts.append(f"building {name}{where}{f' ({phase})' if phase else ''}{extra}")
    return " · ".join(parts)


class _Feeder:
    """The stderr sink: parser, message batches, progress, derivation logs."""

    def __init__(self, ctx: TaskContext, parser: NixLogParser, source_root: Path | None, store: bool = True,
                 dirty_warns: bool = True) -> None:
        self.ctx = ctx
        self.dirty_warns = dirty_warns
        self.store = store
        self.records: list[MessageRecord] = []
        self.parser = parser
        self.source_root = source_root
        self.logs: DrvLogWriter | None = None
        self.pending: list[MessageRecord] = []
        self.last_flush = time.monotonic()
        self.last_progress = 0.0
        self.progress_version = -1
        self.warned: set[str] = set()
        self.dirty: MessageRecord | None = None

    def start(self, rec: ProcessRecord) -> None:
        self.logs = DrvLogWriter(self.ctx.store.log_dir(self.ctx.task_id) / f"{rec.id}.drv-logs")

    def __call__(self, data: bytes) -> None:
        events = self.parser.feed(data)
        if events:
            self.handle(events)
            if self.logs is not None:
                self.logs.flush()
        now = time.monotonic()
        if self.pending and (len(self.pending) >= MESSAGE_BATCH or now - self.last_flush >= MESSAGE_INTERVAL):
            self.flush()
        if now - self.last_progress >= PROGRESS_INTERVAL and self.parser.progress_version != self.progress_version:
            self.report_progress()

    def handle(self, events: Sequence[object]) -> None:
        logs = self.logs
        for ev in events:
            if type(ev) is LogLine:
                if logs is not None:
                    logs.write(ev.drv_path, ev.line)
            elif type(ev) is MessageEvent:
                self.message(ev.message)
            elif type(ev) is DerivationChanged:
                pass

    def message(self, m: NixMessage) -> None:
        if m.kind == KIND_DEBUG:
            return
        mapper = StorePathMapper(self.source_root, self.parser.flake_source) if self.source_root else None

        def mp(p: str | None) -> str | None:
            return mapper.map_path(p) if mapper else p

        text = strip_ansi(m.message)
        if mapper:
            text = mapper.map_text(text)
        trace = [{**f.to_json(), "file": mp(f.file)} for f in m.trace]
        kind = m.kind
        if kind == KIND_WARNING and (_INFO_WARNING_RE.search(text) or (not self.dirty_warns and is_dirty_tree_warning(m))):
            kind = KIND_INFO
        elif kind == KIND_ERROR and is_ignored_error(m):
            kind = KIND_NOTICE
        rec = MessageRecord(
            level=kind, message=text, file=mp(m.file), line=m.line, column=m.column, trace=trace, source="nix"
        )
        if not self.store:
            if m.kind == KIND_ERROR and len(self.records) < 100:
                self.records.append(rec)
            return
        if kind == KIND_WARNING and is_dirty_tree_warning(m):
            self.dirty = rec  # reported after the run, naming the files (see core/ops/dirty_tree)
            return
        self.pending.append(rec)
        if kind == KIND_WARNING and len(self.warned) < WARNINGS_KEPT:
            key = "dirty" if is_dirty_tree_warning(m) else text
            if key not in self.warned:
                self.warned.add(key)
                self.ctx.warn(text)
        if kind == KIND_ERROR:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.ctx.add_messages(batch)
        self.last_flush = time.monotonic()

    def report_progress(self) -> None:
        self.last_progress = time.monotonic()
        self.progress_version = self.parser.progress_version
        snap = self.parser.progress_snapshot()
        b = snap.builds
        fraction = min(1.0, b.done / b.expected) if b.expected else None
        phase = phase_text(snap)
        if self.store and (phase or fraction is not None):  # quiet calls and evaluations report nothing
            self.ctx.progress(fraction, phase)

    def close(self) -> None:
        events = self.parser.close()
        if events:
            self.handle(events)
        self.flush()
        if self.progress_version != self.parser.progress_version:
            self.report_progress()
        if self.logs is not None:
            self.logs.close()


async def _report_dirty(ctx: TaskContext, rec: MessageRecord) -> None:
    """Nix's dirty-tree warning, honest: a warning for the user's edits, an info for NixDeck's own."""
    users, text = await explain_dirty_tree(rec.message)
    ctx.add_messages([rec.model_copy(update={"message": text, "level": KIND_WARNING if users else KIND_INFO})])
    if users:
        ctx.warn(text)


async def run_nix(
    ctx: TaskContext,
    cmd: NixCommand | Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    job: str | None = None,
    step: str | None = None,
    source_root: Path | None = None,
    check: bool = True,
    store_messages: bool = True,
    dirty_tree_warns: bool = True,
) -> NixRun:
    """Run one Nix command in the task (see the module docstring); raise its failure when `check`.

    With `store_messages=False` nothing is stored or warned; the error messages are kept in
    `NixRun.error_records` for the caller to store if they matter. `dirty_tree_warns=False` keeps
    "Git tree is dirty" an info message (e.g. while `nix flake lock` itself rewrites flake.lock).
    """
    if isinstance(cmd, NixCommand):
        argv, additions, cwd = list(cmd.argv), dict(cmd.env), cwd if cwd is not None else cmd.cwd
    else:
        argv, additions = list(cmd), nix_env_additions()
    if not argv:
        raise TaskFailed("empty nix command")
    additions = merge_env(additions, env or {}) if env else additions
    if "NIX_CONFIG" in additions and os.environ.get("NIX_CONFIG"):
        additions["NIX_CONFIG"] = merge_env({"NIX_CONFIG": os.environ["NIX_CONFIG"]}, {"NIX_CONFIG": additions["NIX_CONFIG"]})[
            "NIX_CONFIG"
        ]
    prog = argv[0]
    if Path(prog).name == "nix":
        path, version = await find_nix_cached(additions, prog)
        argv[0] = path
    else:
        path, version = prog, NixVersion(0, 0)
    parser = NixLogParser()
    feeder = _Feeder(ctx, parser, source_root, store_messages, dirty_tree_warns)
    try:
        proc = await ctx.run_process(
            argv, cwd=cwd, env=additions, job=job, step=step, on_stderr=feeder, emit_stderr=False,
            check=False, on_start=feeder.start,
        )
    finally:
        feeder.close()
    if feeder.dirty is not None:
        await _report_dirty(ctx, feeder.dirty)
    summary = LogSummary.from_parser(parser, source_root=source_root)
    logs = feeder.logs
    files = {k: v for k, v in logs.files.items() if k} if logs else {}
    snap = parser.progress_snapshot()
    if proc.exit_code == 0 and store_messages and snap.builds.expected:
        # builds another process finished meanwhile never report "done" here: a success is 100 %
        b = snap.builds
        done = replace(snap, builds=replace(b, done=max(b.done, b.expected), running=0), running_builds=())
        ctx.progress(1.0, phase_text(done))
    run = NixRun(proc, parser, summary, path, version, logs.directory if logs else None, files, _installables(argv),
                 feeder.records)
    if check and not run.ok:
        raise run.failure()
    return run


# ------------------------------------------------------------------------------ building attributes

def _reason_for(run: NixRun, drv: str | None) -> str:
    """The error about `drv` (with the first builder failure when it only failed through a dependency)."""
    texts = [strip_ansi(e.message) for e in run.errors]
    mine = next((t for t in texts if drv and drv in t), None)
    builder = next((t for t in texts if "builder for '" in t), None)
    if mine is None:
        return builder or run.first_error() or "not built"
    if "dependencies of derivation" in mine and builder and builder != mine:
        return f"{mine.splitlines()[0]}; {builder.splitlines()[0]}"
    return mine.splitlines()[0]


async def _dry_run(ctx: TaskContext, cmds: Any, inst: str, env: Mapping[str, str] | None, job: str | None,
                   step: str | None, source_root: Path) -> tuple[str | None, str | None, NixRun]:
    """(drv path, out path, run) of one installable, evaluated without building."""
    base = cmds.build([inst])
    argv = [a for a in base.argv]
    argv.insert(argv.index("--json") + 1, "--dry-run")
    run = await run_nix(ctx, NixCommand(argv, dict(base.env), base.cwd, True), env=env, job=job, step=step,
                        source_root=source_root, check=False, store_messages=False)
    if not run.ok:
        return None, None, run
    from nixdeck.core.nix.outputs import parse_build_json

    results = parse_build_json(run.stdout())
    if not results:
        return None, None, run
    return results[0].drv_path, results[0].out_path, run


def _split_attr(attr: str) -> tuple[str, str]:
    """('nixosConfigurations', 'web1.config.system.build.toplevel'): the first component and the rest."""
    if attr.startswith('"'):
        end = attr.index('"', 1)
        return attr[: end + 1], attr[end + 2 :]
    first, _, rest = attr.partition(".")
    return first, rest


async def _out_paths_by_attr(ctx: TaskContext, cmds: Any, flake_dir: Path, attrs: list[str],
                             env: Mapping[str, str] | None, job: str | None, step: str | None) -> dict[str, str]:
    """attr -> out path, from one `nix eval --apply` per top-level output (usually one in all)."""
    import json

    from nixdeck.core.nix.attrs import installable

    groups: dict[str, list[str]] = {}
    for a in attrs:
        groups.setdefault(_split_attr(a)[0], []).append(a)
    found: dict[str, str] = {}
    for first, members in groups.items():
        fields = "; ".join(
            f'"a{i}" = (x{"." + _split_attr(a)[1] if _split_attr(a)[1] else ""}).outPath' for i, a in enumerate(members)
        )
        cmd = cmds.eval_json(installable(str(flake_dir), first), apply=f"x: {{ {fields}; }}")
        run = await run_nix(ctx, cmd, env=env, job=job, step=step, source_root=flake_dir, store_messages=False)
        try:
            data = json.loads(run.stdout())
        except ValueError:
            raise TaskFailed("nix eval printed no JSON for the built attributes' out paths") from None
        found.update({a: str(data[f"a{i}"]) for i, a in enumerate(members)})
    return found


async def build_attrs(
    ctx: TaskContext,
    flake_dir: Path,
    attrs: dict[str, str],
    *,
    job: str | None = None,
    step: str | None = None,
    settings: BuildSettings | None = None,
    env: Mapping[str, str] | None = None,
    derivations: list[dict[str, Any]] | None = None,
) -> dict[str, str]:
    """Build every attribute path (key -> attr) of the flake in ONE `nix build --keep-going`.

    Returns key -> out path. When some fail, raises `PartialBuildError` with `.built` and `.failed`
    (key -> reason). A single attribute's failure raises the plain classified error instead.
    `derivations`, if given, is extended with every derivation built (drv, state, host, ...).
    """
    from nixdeck.core.nix.attrs import installable
    from nixdeck.core.nix.commands import NixCommands
    from nixdeck.core.nix.outputs import NixOutputError, parse_build_json

    if not attrs:
        return {}
    nix_path, version = await find_nix_cached(env)
    s = replace(settings or BuildSettings(), keep_going=True)
    cmds = NixCommands(version, nix_path, s)
    flake_dir = Path(flake_dir)
    ref = str(flake_dir)
    unique = list(dict.fromkeys(attrs.values()))
    inst = [installable(ref, a) for a in unique]
    run = await run_nix(ctx, cmds.build(inst), env=env, job=job, step=step, source_root=flake_dir, check=False)
    if derivations is not None:
        derivations.extend(run.derivations())
    if run.ok:
        try:
            results = parse_build_json(run.stdout())
        except NixOutputError as e:
            raise TaskFailed(str(e)) from None
        if len(results) != len(unique) or any(r.out_path is None for r in results):
            raise TaskFailed(f"nix build printed {len(results)} results for {len(unique)} attributes")
        if len(unique) == 1:
            by_attr = {unique[0]: results[0].out_path or ""}
        else:
            # Nix 2.8 lists the results sorted by derivation path, not in the order asked: ask the
            # evaluator (its cache is warm after the build) which out path is whose.
            by_attr = await _out_paths_by_attr(ctx, cmds, flake_dir, unique, env, job, step)
            if set(by_attr.values()) != {r.out_path for r in results}:
                raise TaskFailed("the built out paths do not match what the attributes evaluate to; build again")
        return {k: by_attr[a] for k, a in attrs.items()}
    err = run.failure()
    if len(unique) == 1 or isinstance(err, NixBuildFailed) and err.kind == "other" and not run.parser.derivations:
        raise err
    # Find out which attributes evaluate, which built, and why the others failed.
    built: dict[str, str] = {}
    failed: dict[str, str] = {}
    evaluated: dict[str, tuple[str | None, str]] = {}
    seen = {(strip_ansi(e.message), e.file, e.line) for e in run.errors}
    seen |= {(r.message, r.file, r.line) for r in ctx.store.messages(ctx.task_id, ["error"])}
    for a, i in zip(unique, inst, strict=True):
        drv, out, dry = await _dry_run(ctx, cmds, i, env, job, step, flake_dir)
        if not dry.ok:
            new = [r for r in dry.error_records if (r.message, r.file, r.line) not in seen]
            seen.update((r.message, r.file, r.line) for r in new)
            ctx.add_messages(new)
        if out is None:
            failed[a] = str(dry.failure()) if not dry.ok else "nix printed no out path"
        else:
            evaluated[a] = (drv, out)
    if isinstance(err, NixUserError) and evaluated:
        # an evaluation error stopped the whole build: build the attributes that do evaluate
        sub = {a: a for a in evaluated}
        try:
            built.update(await build_attrs(ctx, flake_dir, sub, job=job, step=step, settings=settings, env=env,
                                           derivations=derivations))
        except PartialBuildError as pe:
            built.update(pe.built)
            failed.update(pe.failed)
        except TaskFailed as e:
            failed.update({a: str(e) for a in sub})
    else:
        for a, (drv, out) in evaluated.items():
            if os.path.exists(out):
                built[a] = out
            else:
                failed[a] = _reason_for(run, drv)
    built_keys = {k: built[a] for k, a in attrs.items() if a in built}
    failed_keys = {k: failed.get(a, "not built") for k, a in attrs.items() if a not in built}
    if not failed_keys:
        return built_keys
    names = ", ".join(failed_keys)
    first = next(iter(failed_keys.values())).splitlines()[0]
    raise PartialBuildError(
        f"{len(failed_keys)} of {len(attrs)} failed to build: {names} ({first})", built_keys, failed_keys,
        list(derivations) if derivations is not None else run.derivations(),
    )
