"""Update Nix Flake: update all or some inputs, report each input's old -> new revision and date."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, field_validator

from nixdeck.core.nix.lockdiff import diff_locks
from nixdeck.core.ops.nixproject import NixProjectSubmission, open_nix_project
from nixdeck.core.ops.nixrun import run_nix
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.model import TaskKind
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission

JOB = "flake"


class FlakeUpdateSubmission(NixProjectSubmission):
    """`inputs` empty: every input. `commit`: commit flake.lock with git (`--commit-lock-file`)."""

    inputs: list[str] = Field(default_factory=list)
    commit: bool = False

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, v: list[str]) -> list[str]:
        for n in v:
            if not n or n.startswith("-") or any(c.isspace() for c in n):
                raise ValueError(f"invalid input name {n!r}")
        return list(dict.fromkeys(v))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TaskFailed(f"cannot read {path}: {e.strerror or e}") from None


def root_inputs(lock_text: str | None) -> list[str] | None:
    """Names of the flake's own inputs per flake.lock (None: no lock or unreadable)."""
    if not lock_text:
        return None
    try:
        data = json.loads(lock_text)
        nodes = data["nodes"]
        return sorted(nodes[data.get("root", "root")].get("inputs", {}))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


async def _head(ctx: TaskContext, repo: Path) -> str | None:
    if not (repo / ".git").exists():
        return None
    res = await ctx.run_process(["git", "-C", str(repo), "rev-parse", "HEAD"], job=JOB, step="update",
                                check=False, emit_stdout=False, emit_stderr=False)
    text = res.stdout_text().strip()
    return text if res.exit_code == 0 and text else None


class FlakeUpdate(Operation):
    kind = TaskKind.FLAKE_UPDATE.value
    submission_type = FlakeUpdateSubmission
    default_timeout = 1800.0

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, FlakeUpdateSubmission)
        what = ", ".join(submission.inputs) if submission.inputs else "all inputs"
        return f"Update flake ({what})"

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, FlakeUpdateSubmission)
        ctx.plan(JOB, ["update"])
        p = await open_nix_project(ctx, sub)
        lock = p.path / "flake.lock"
        before = _read(lock)
        known = root_inputs(before)
        if sub.inputs and known is not None:
            unknown = [n for n in sub.inputs if n.split("/", 1)[0] not in known]
            if unknown:
                raise UserError(
                    f"the flake has no input {', '.join(repr(n) for n in unknown)} "
                    f"(its inputs: {', '.join(known) or 'none'})"
                )
        head_before = await _head(ctx, p.path) if sub.commit else None
        cmd = p.commands.flake_update(str(p.path), sub.inputs, commit_lock_file=sub.commit)
        async with ctx.step("update", job=JOB, detail=", ".join(sub.inputs) or "all inputs"):
            # flake.lock being rewritten makes the tree dirty while Nix works: not worth a warning
            await run_nix(ctx, cmd, env=p.env, job=JOB, step="update", source_root=p.path, dirty_tree_warns=False)
        after = _read(lock)
        changes = diff_locks(before, after)
        commit = None
        if sub.commit:
            head_after = await _head(ctx, p.path)
            commit = head_after if head_after and head_after != head_before else None
        ctx.set_result(
            lock_changed=before != after,
            changes=[c.to_json() | {"summary": c.describe()} for c in changes],
            commit=commit,
        )
        ctx.progress(1.0, f"{len(changes)} input(s) changed" if changes else "inputs already up to date")


OPERATIONS: list[Operation] = [FlakeUpdate()]
