"""Build Image for Device: pick the device's image output for a format, build it, find the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator

from nixdeck.core.nix.attrs import IMAGE_FORMATS, device_attr, image_attr
from nixdeck.core.nix.outputs import NixOutputError, parse_json
from nixdeck.core.ops.nixproject import NixProject, NixProjectSubmission, check_device_name, open_nix_project
from nixdeck.core.ops.nixrun import build_attrs, run_nix
from nixdeck.core.tasks.context import TaskContext
from nixdeck.core.tasks.errors import TaskFailed, UserError
from nixdeck.core.tasks.model import TaskKind
from nixdeck.core.tasks.operation import Operation
from nixdeck.core.tasks.submission import Submission

ImageFormat = Literal["sd-card", "iso", "qcow", "raw"]
assert set(IMAGE_FORMATS) == {"sd-card", "iso", "qcow", "raw"}

#: Where the image file lies inside the out path, per format (first match wins).
IMAGE_GLOBS: dict[str, tuple[str, ...]] = {
    "sd-card": ("sd-image/*.img", "sd-image/*.img.zst", "*.img"),
    "iso": ("iso/*.iso", "*.iso"),
    "qcow": ("*.qcow2", "**/*.qcow2"),
    "raw": ("*.img", "*.raw", "**/*.img"),
}
# One evaluation tells which image outputs the device has (names only; nothing is built).
AVAILABLE_APPLY = (
    "c: let names = a: if builtins.isAttrs a then builtins.attrNames a else []; in {"
    ' "system.build" = names (c.system.build or {});'
    ' "system.build.images" = names (c.system.build.images or {});'
    " formats = names (c.formats or {}); }"
)


class BuildImageSubmission(NixProjectSubmission):
    device: str
    format: ImageFormat = "sd-card"

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device_name(v)


def find_image(out_path: str, fmt: str) -> Path | None:
    """The image file inside a built image output (largest match of the format's patterns)."""
    root = Path(out_path)
    if root.is_file():
        return root
    for pattern in IMAGE_GLOBS.get(fmt, ()):
        hits = [p for p in root.glob(pattern) if p.is_file()]
        if hits:
            return max(hits, key=lambda p: p.stat().st_size)
    return None


async def available_outputs(ctx: TaskContext, p: NixProject, device: str, job: str) -> dict[str, set[str]]:
    cmd = p.commands.eval_json(f"{p.path}#{device_attr(device, 'config')}", apply=AVAILABLE_APPLY)
    run = await run_nix(ctx, cmd, env=p.env, job=job, step="find output", source_root=p.path)
    try:
        data = parse_json(run.stdout(), "nix eval")
    except NixOutputError as e:
        raise TaskFailed(str(e)) from None
    if not isinstance(data, dict):
        raise TaskFailed("nix eval printed no attribute set")
    return {str(k): {str(x) for x in v} for k, v in data.items() if isinstance(v, list)}


class BuildImage(Operation):
    kind = TaskKind.BUILD_IMAGE.value
    submission_type = BuildImageSubmission
    default_timeout = 4 * 3600.0

    def title(self, submission: Submission) -> str:
        assert isinstance(submission, BuildImageSubmission)
        return f"Build {submission.format} image for {submission.device}"

    def devices(self, submission: Submission) -> list[str]:
        assert isinstance(submission, BuildImageSubmission)
        return [submission.device]

    async def run(self, ctx: TaskContext) -> None:
        sub = ctx.submission
        assert isinstance(sub, BuildImageSubmission)
        job = sub.device
        ctx.plan(job, ["find output", "build", "locate image"])
        p = await open_nix_project(ctx, sub)
        async with ctx.step("find output", job=job):
            available = await available_outputs(ctx, p, sub.device, job)
            try:
                attr = image_attr(sub.device, sub.format, available)
            except ValueError as e:
                raise UserError(str(e)) from None
        ctx.set_result(device=sub.device, format=sub.format, attribute=attr)
        drvs: list[dict[str, Any]] = []
        async with ctx.step("build", job=job, detail=attr):
            try:
                out = (await build_attrs(ctx, p.path, {"image": attr}, job=job, step="build", settings=p.settings,
                                         env=p.env, derivations=drvs))["image"]
            finally:
                ctx.set_result(derivations=drvs)
        ctx.set_result(out_path=out)
        async with ctx.step("locate image", job=job):
            image = find_image(out, sub.format)
            if image is None:
                raise TaskFailed(f"no {sub.format} image file found in {out} (looked for {', '.join(IMAGE_GLOBS[sub.format])})")
        ctx.set_result(image=str(image), size=image.stat().st_size)


OPERATIONS: list[Operation] = [BuildImage()]
