"""From a step's resolved ``with`` arguments to the child task of the operation's own kind.

A step runs exactly what the window's or the CLI's action would (the same kinds, the same
submissions), so it shows in the Tasks panel and its details like a click. ``steps.NAME.result``
is the child's result plus ``targets`` (the devices it was given), ``failed`` and ``ok`` (which of
them failed / succeeded), so a later step can act on, say, only the devices a check found failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission
from nixdeck.core.ops.flake_update import FlakeUpdateSubmission
from nixdeck.core.ops.image import BuildImageSubmission
from nixdeck.core.ops.nix_build import BuildDeviceSubmission, BuildProjectSubmission
from nixdeck.core.ops.run_command import RunCommandSubmission
from nixdeck.core.ops.ssh_command import SshCommandsSubmission
from nixdeck.core.tasks.errors import UserError
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from nixdeck.core.tasks.submission import Submission

from .durations import parse_duration
from .selectors import expand

#: The kind a step of each op makes when its arguments cannot be resolved (e.g. it is skipped).
DEFAULT_KIND = {
    "build": TaskKind.BUILD_PROJECT.value,
    "build_project": TaskKind.BUILD_PROJECT.value,
    "deploy": TaskKind.DEPLOY_DEVICES.value,
    "flake_update": TaskKind.FLAKE_UPDATE.value,
    "image": TaskKind.BUILD_IMAGE.value,
    "ssh_command": TaskKind.SSH_COMMANDS.value,
    "run_command": TaskKind.RUN_COMMAND.value,
    "automation": TaskKind.AUTOMATION.value,
}


@dataclass
class ChildSpec:
    """What to submit for a step."""

    kind: str
    submission: Submission
    targets: list[str] = field(default_factory=list)
    timeout: float | None = None
    forced: bool = False

    def describe(self) -> dict[str, Any]:
        """For the dry-run plan: the kind, the targets and the submission as it would be stored."""
        from nixdeck.core.tasks.submission import redact

        return {"kind": self.kind, "targets": self.targets, "timeout": self.timeout, "forced": self.forced,
                "submission": redact(self.submission)}


def _list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
        return [str(v) for v in value]
    raise UserError(f"with.{key}: {value!r} is not a list of names")


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise UserError(f"with.{key}: {value!r} is not true or false")


def _argv(args: Mapping[str, Any]) -> list[str]:
    if "command" in args:
        if not isinstance(args["command"], str) or not args["command"].strip():
            raise UserError(f"with.command: {args['command']!r} is not a command line")
        return ["sh", "-c", args["command"]]
    argv = args.get("argv")
    if isinstance(argv, list):  # a list parameter in argv stands for its items
        argv = [x for a in argv for x in (a if isinstance(a, list) else [a])]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str | int | float) for a in argv):
        raise UserError(f"with.argv: {argv!r} is not a list of arguments")
    return [str(a).lower() if isinstance(a, bool) else str(a) for a in argv]


def child_for(op: str, args: Mapping[str, Any], project_dir: str, devices: Mapping[str, Sequence[str]]) -> ChildSpec:
    """The child task of a step (UserError naming the argument when one cannot be used)."""
    timeout = None
    if "timeout" in args:
        try:
            timeout = parse_duration(args["timeout"])
        except ValueError as e:
            raise UserError(f"with.timeout: {e}") from None
    try:
        spec = _build(op, args, project_dir, devices, timeout)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'with'}: {str(err['msg']).removeprefix('Value error, ')}"
                         for err in e.errors())
        raise UserError(f"with: {msgs}") from None
    return spec


def _targets(args: Mapping[str, Any], devices: Mapping[str, Sequence[str]]) -> list[str]:
    targets = expand(args.get("devices"), devices, what="with.devices")
    if not targets:
        raise UserError("with.devices: no device selected")
    return targets


def _build(op: str, args: Mapping[str, Any], project_dir: str, devices: Mapping[str, Sequence[str]],
           timeout: float | None) -> ChildSpec:
    if op == "build":
        targets = _targets(args, devices)
        if len(targets) == 1:
            return ChildSpec(TaskKind.BUILD_DEVICE.value, BuildDeviceSubmission(project_dir=project_dir, device=targets[0]),
                             targets, timeout)
        return ChildSpec(TaskKind.BUILD_PROJECT.value, BuildProjectSubmission(project_dir=project_dir, devices=targets),
                         targets, timeout)
    if op == "build_project":
        return ChildSpec(TaskKind.BUILD_PROJECT.value, BuildProjectSubmission(project_dir=project_dir), [], timeout)
    if op == "deploy":
        targets = _targets(args, devices)
        waves = _list(args["waves"], "waves") if "waves" in args else []
        sub = DeployDevicesSubmission(
            project_dir=project_dir, devices=targets, action=args.get("action"), waves=waves,
            **{k: args[k] for k in ("limit", "max_failures") if k in args},
        )
        return ChildSpec(TaskKind.DEPLOY_DEVICES.value, sub, targets, timeout, _bool(args.get("force", False), "force"))
    if op == "flake_update":
        sub_f = FlakeUpdateSubmission(project_dir=project_dir, inputs=_list(args.get("inputs", []), "inputs"),
                                      commit=_bool(args.get("commit", False), "commit"))
        return ChildSpec(TaskKind.FLAKE_UPDATE.value, sub_f, [], timeout)
    if op == "image":
        targets = _targets(args, devices)
        if len(targets) != 1:
            raise UserError(f"with.devices: an image is built for one device, not {len(targets)}")
        return ChildSpec(TaskKind.BUILD_IMAGE.value,
                         BuildImageSubmission(project_dir=project_dir, device=targets[0], format=args["format"]),
                         targets, timeout)
    if op == "ssh_command":
        targets = _targets(args, devices)
        sub_s = SshCommandsSubmission(project_dir=project_dir, devices=targets, argv=_argv(args),
                                      command_timeout=timeout, **({"limit": args["limit"]} if "limit" in args else {}))
        return ChildSpec(TaskKind.SSH_COMMANDS.value, sub_s, targets, None)
    if op == "run_command":
        env = args.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise UserError(f"with.env: {env!r} is not a table of text values")
        device = args.get("device")
        if device is not None:
            device = expand(device, devices, what="with.device")
            if len(device) != 1:
                raise UserError("with.device: names one device")
            device = device[0]
        sub_r = RunCommandSubmission(argv=_argv(args), cwd=args.get("cwd") or project_dir, env=env, device=device)
        return ChildSpec(TaskKind.RUN_COMMAND.value, sub_r, [device] if device else [], timeout)
    raise UserError(f"op {op} has no child task")


def _failed_devices(child: TaskRecord, targets: list[str]) -> list[str]:
    per = child.result.get("devices")
    if isinstance(per, dict) and per:
        bad = []
        for name, info in per.items():
            state = info.get("state") if isinstance(info, dict) else None
            if isinstance(info, dict) and (info.get("error") or (state and state not in ("completed", "completed_with_warnings"))):
                bad.append(name)
        return bad
    return [] if child.state.ok else list(targets)


def step_view(child: TaskRecord | None, targets: list[str], op: str, *, skipped: str | None = None) -> dict[str, Any]:
    """What ``steps.NAME`` holds for references and conditions."""
    if child is None or skipped is not None:
        return {"state": TaskState.SKIPPED.value, "changed": False, "skipped": True, "reason": skipped or "",
                "result": {"targets": targets, "failed": [], "ok": []}, "task": child.id if child else None}
    failed = _failed_devices(child, targets)
    result = {**child.result, "targets": targets, "failed": failed, "ok": [t for t in targets if t not in failed]}
    changed = bool(child.result.get("lock_changed")) if op == "flake_update" else child.state.ok
    return {"state": child.state.value, "changed": changed, "skipped": False, "reason": child.error or "",
            "result": result, "task": child.id}
