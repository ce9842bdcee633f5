"""Argv builders for every Nix call NixDeck makes (never a shell string), aware of the Nix version.

Each builder returns a `NixCommand`: the argv, the environment additions (`NO_COLOR=1`, flakes
enabled through `NIX_CONFIG`) and the working directory if one is needed. Every new-style `nix`
call logs with `--log-format internal-json -v`, which `NixLogParser` reads from stderr; builds print
their out paths as JSON on stdout (2.8 has no `--print-out-paths`), see `outputs.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nixdeck.core.nix.version import NixVersion

LOG_ARGS = ("--log-format", "internal-json", "-v")
NIX_CONFIG_LINES = ("extra-experimental-features = nix-command flakes",)
SWITCH_ACTIONS = ("switch", "boot", "test", "dry-activate")
SYSTEM_PROFILE = "/nix/var/nix/profiles/system"


@dataclass(frozen=True, slots=True)
class NixCommand:
    """A process to run: `argv`, env additions (merge with `env_for`) and optional `cwd`."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    json_stdout: bool = False  # stdout is JSON (build --json, eval --json, metadata --json)
    internal_json: bool = True  # stderr is `--log-format internal-json`

    def env_for(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` (e.g. os.environ) with this command's additions; NIX_CONFIG lines are appended."""
        return merge_env(base, self.env)


def nix_env_additions(extra_config: Sequence[str] = ()) -> dict[str, str]:
    """`NO_COLOR=1` and a NIX_CONFIG that enables flakes (plus `extra_config` lines)."""
    return {"NO_COLOR": "1", "NIX_CONFIG": "\n".join((*NIX_CONFIG_LINES, *extra_config))}


def merge_env(base: Mapping[str, str], additions: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    for k, v in additions.items():
        if k == "NIX_CONFIG" and env.get(k):
            env[k] = env[k].rstrip("\n") + "\n" + v
        else:
            env[k] = v
    return env


def sshopts_env(ssh_options: Sequence[str]) -> dict[str, str]:
    """`NIX_SSHOPTS` for `nix copy` over ssh (e.g. `-F config`, `-p 2222`; 2.8 ignores URI ports).

    Nix splits NIX_SSHOPTS on spaces, so an option containing whitespace is refused.
    """
    for o in ssh_options:
        if not o or any(c.isspace() for c in o):
            raise ValueError(f"ssh option {o!r} cannot be passed through NIX_SSHOPTS (empty or has spaces)")
    return {"NIX_SSHOPTS": " ".join(ssh_options)}


def store_uri(host: str, user: str | None = "root", scheme: str = "ssh-ng") -> str:
    """`ssh-ng://root@host` (scheme `ssh` for the legacy protocol)."""
    if scheme not in ("ssh", "ssh-ng"):
        raise ValueError(f"unsupported store scheme {scheme!r}")
    if not host or any(c in host for c in "/ @?#") or host.startswith("-"):
        raise ValueError(f"invalid host {host!r}")
    return f"{scheme}://{user + '@' if user else ''}{host}"


@dataclass(frozen=True, slots=True)
class BuildSettings:
    """Project build settings passed to every build: Nix's own remote builders and parallelism.

    `builders` is Nix's `builders` value (e.g. `ssh-ng://b1 x86_64-linux - 4; ssh://b2`), "" for
    none, None to leave Nix's configuration alone.
    """

    builders: str | None = None
    builders_use_substitutes: bool | None = None
    max_jobs: int | str | None = None  # a number or "auto"
    cores: int | None = None
    keep_going: bool = False
    options: Mapping[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        out: list[str] = []
        if self.builders is not None:
            out += ["--builders", self.builders]
        if self.builders_use_substitutes is not None:
            out += ["--option", "builders-use-substitutes", "true" if self.builders_use_substitutes else "false"]
        if self.max_jobs is not None:
            if not (isinstance(self.max_jobs, int) and self.max_jobs >= 0) and self.max_jobs != "auto":
                raise ValueError(f"max-jobs must be a number or 'auto', not {self.max_jobs!r}")
            out += ["--max-jobs", str(self.max_jobs)]
        if self.cores is not None:
            out += ["--cores", str(int(self.cores))]
        if self.keep_going:
            out.append("--keep-going")
        for k, v in self.options.items():
            out += ["--option", k, v]
        return out


def _check_args(values: Sequence[str], what: str) -> list[str]:
    out = list(values)
    if not out:
        raise ValueError(f"no {what} given")
    for v in out:
        if not v or v.startswith("-"):
            raise ValueError(f"invalid {what} {v!r}")
    return out


# Evaluation errors carry their trace (the "while evaluating … / from call site …" frames the task
# details show); without it Nix 2.8 gives only the innermost location and a hint to re-run.
SHOW_TRACE = ("--show-trace",)


class NixCommands:
    """Builds argv for one installed Nix (`nix` path and version)."""

    def __init__(self, version: NixVersion, nix: str = "nix", settings: BuildSettings | None = None) -> None:
        self.version = version
        self.nix = nix
        self.settings = settings or BuildSettings()
        self.env = nix_env_additions()

    def _cmd(self, *args: str, cwd: str | None = None, json_stdout: bool = False) -> NixCommand:
        return NixCommand([self.nix, *args, *LOG_ARGS], dict(self.env), cwd, json_stdout)

    # ------------------------------------------------------------ build/eval

    def build(
        self, installables: Sequence[str], *, out_link: str | None = None, settings: BuildSettings | None = None
    ) -> NixCommand:
        """`nix build --json --no-link` (or `--out-link`) with the remote-builder settings."""
        inst = _check_args(installables, "installable")
        link = ["--out-link", out_link] if out_link else ["--no-link"]
        s = (settings or self.settings).argv()
        return self._cmd("build", "--json", *link, *s, *SHOW_TRACE, *inst, json_stdout=True)

    def eval_json(self, installable: str, *, apply: str | None = None) -> NixCommand:
        """`nix eval --json INSTALLABLE [--apply FN]`."""
        (inst,) = _check_args([installable], "installable")
        extra = ["--apply", apply] if apply else []
        return self._cmd("eval", "--json", *SHOW_TRACE, inst, *extra, json_stdout=True)

    def log(self, drv_path: str) -> NixCommand:
        """`nix log DRV`: the stored build log (plain text on stdout)."""
        (drv,) = _check_args([drv_path], "derivation")
        return self._cmd("log", drv)

    def path_info(self, paths: Sequence[str], *, recursive: bool = False, closure_size: bool = False,
                  store: str | None = None) -> NixCommand:
        flags = ["--json"] + (["-r"] if recursive else []) + (["-S"] if closure_size else [])
        if store:
            flags += ["--store", store]
        return self._cmd("path-info", *flags, *_check_args(paths, "store path"), json_stdout=True)

    # ------------------------------------------------------------------ flake

    def flake_metadata(self, flake_ref: str) -> NixCommand:
        return self._cmd("flake", "metadata", "--json", *_check_args([flake_ref], "flake"), json_stdout=True)

    def flake_show(self, flake_ref: str) -> NixCommand:
        return self._cmd("flake", "show", "--json", *_check_args([flake_ref], "flake"), json_stdout=True)

    def flake_update(self, flake_dir: str, inputs: Sequence[str] = (), *, commit_lock_file: bool = False) -> NixCommand:
        """Update all inputs, or only `inputs`, of the flake in `flake_dir` (run there as cwd).

        2.19+: `nix flake update [X...]`; older: `nix flake update` / `nix flake lock --update-input X`.
        """
        names = list(inputs)
        for n in names:
            if not n or n.startswith("-") or any(c.isspace() for c in n):
                raise ValueError(f"invalid input name {n!r}")
        commit = ["--commit-lock-file"] if commit_lock_file else []
        if not names:
            return self._cmd("flake", "update", *commit, cwd=flake_dir)
        if self.version.has_flake_update_inputs:
            return self._cmd("flake", "update", *commit, *names, cwd=flake_dir)
        upd = [a for n in names for a in ("--update-input", n)]
        return self._cmd("flake", "lock", *commit, *upd, cwd=flake_dir)

    # ------------------------------------------------------------------- copy

    def copy_to(
        self,
        to_store: str,
        paths: Sequence[str],
        *,
        no_check_sigs: bool = False,
        substitute_on_destination: bool = False,
        ssh_options: Sequence[str] = (),
    ) -> NixCommand:
        """`nix copy --to ssh-ng://... PATHS` (unsigned paths need `no_check_sigs` over ssh-ng)."""
        flags = ["--to", to_store]
        if no_check_sigs:
            flags.append("--no-check-sigs")
        if substitute_on_destination:
            flags.append("--substitute-on-destination")
        cmd = self._cmd("copy", *flags, *_check_args(paths, "store path"))
        if ssh_options:
            cmd.env.update(sshopts_env(ssh_options))
        return cmd

    def store_sign(self, key_file: str, paths: Sequence[str], *, recursive: bool = True) -> NixCommand:
        flags = ["--key-file", key_file] + (["-r"] if recursive else [])
        return self._cmd("store", "sign", *flags, *_check_args(paths, "store path"))


# ----------------------------------------------------- on the device (over ssh)

def set_profile_argv(path: str, profile: str = SYSTEM_PROFILE, nix_env: str = "nix-env") -> list[str]:
    """`nix-env -p PROFILE --set PATH`: make `path` the profile's new generation."""
    _check_args([path, profile], "path")
    return [nix_env, "-p", profile, "--set", path]


def switch_argv(system_path: str, action: str) -> list[str]:
    """`<system>/bin/switch-to-configuration ACTION`."""
    if action not in SWITCH_ACTIONS:
        raise ValueError(f"unknown switch action {action!r}; one of {', '.join(SWITCH_ACTIONS)}")
    _check_args([system_path], "system path")
    return [system_path.rstrip("/") + "/bin/switch-to-configuration", action]
