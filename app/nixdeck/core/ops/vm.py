"""Run NixOS VM for Device: build `system.build.vm`, then run its `bin/run-<host>-vm` until it ends.

The VM runs as a process of the task (own process group), its console streamed live; cancelling
the task SIGTERMs the group (the script and its qemu), so nothing is left running. The VM's disk
image (`<host>.qcow2`, written to the working directory) lives in `<data dir>/vms/<device>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator

from nixdeck.core.nix.attrs import vm_attr
from nixdeck.core.ops.nixproject import NixProjectSubmission, check_device_name, open_nix_project
from nixdeck.core.ops.nixrun import build_attrs
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed
from nixdeck.core.tasks.model import TaskKind
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission


class RunVmSubmission(NixProjectSubmission):
    device: str

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device_name(v)


def vm_script(out_path: str) -> Path:
    scripts = sorted(Path(out_path, "bin").glob("run-*-vm"))
    if not scripts:
        raise TaskFailed(f"the VM output {out_path} has no bin/run-*-vm script")
    return scripts[0]


class RunVm(Operation):
    kind = TaskKind.RUN_VM.value
    submission_type = RunVmSubmission
    default_timeout = None  # a VM runs until it is stopped

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, RunVmSubmission)
        return f"Run VM of {submission.device}"

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, RunVmSubmission)
        return [submission.device]

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, RunVmSubmission)
        job = sub.device
        ctx.plan(job, ["build", "run"])
        p = await open_nix_project(ctx, sub)
        drvs: list[dict[str, Any]] = []
        async with ctx.step("build", job=job):
            try:
                out = (await build_attrs(ctx, p.path, {"vm": vm_attr(sub.device)}, job=job, step="build",
                                         settings=p.settings, env=p.env, derivations=drvs))["vm"]
            finally:
                ctx.set_result(device=sub.device, derivations=drvs)
        script = vm_script(out)
        workdir = Path(ctx.store.data_dir) / "vms" / sub.device
        workdir.mkdir(parents=True, exist_ok=True)
        ctx.set_result(out_path=out, script=str(script), workdir=str(workdir))
        ctx.progress(None, f"VM of {sub.device} running")
        async with ctx.step("run", job=job, detail=script.name):
            res = await ctx.run_process([str(script)], cwd=workdir, env=p.env, job=job, step="run",
                                        emit_stdout=True, emit_stderr=True, check=False)
            if res.exit_code != 0:
                tail = "; ".join(res.stderr_tail(3))
                how = f"signal {res.outcome.signal}" if res.exit_code is None else f"code {res.exit_code}"
                raise TaskFailed(f"the VM exited with {how}" + (f": {tail}" if tail else ""))
        ctx.set_result(exit_code=res.exit_code)


OPERATIONS: list[Operation] = [RunVm()]
