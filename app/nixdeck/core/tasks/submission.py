"""Submission data: the validated pydantic input of a task, with secret fields redacted before storage.

Mark a field secret with `secret_field()` (or type it `SecretStr`). The stored and displayed form
replaces its value with REDACTED; the plain value lives only in memory for the task's own run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretBytes, SecretStr

REDACTED = "***redacted***"
_SECRET_ENV = re.compile(r"(SECRET|TOKEN|PASSW|PASSPHRASE|CREDENTIAL|PRIVATE|API_?KEY|AUTH(?!OR))", re.I)


class Submission(BaseModel):
    """Base of every task's input model. Unknown fields are refused so typos are caught."""

    model_config = ConfigDict(extra="forbid")


class EmptySubmission(Submission):
    """For tasks that take no input (e.g. some record-only tasks)."""


class RecordSubmission(Submission):
    """Free-form details of an immediate record-only task (e.g. "device added")."""

    model_config = ConfigDict(extra="allow")


def secret_field(default: Any = ..., **kw: Any) -> Any:
    """A pydantic Field whose value never reaches the database, the logs or the screen."""
    extra = dict(kw.pop("json_schema_extra", None) or {})
    extra["secret"] = True
    return Field(default, json_schema_extra=extra, **kw)


def _is_secret(model: type[BaseModel], name: str) -> bool:
    info = model.model_fields[name]
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("secret"))


def redact(sub: BaseModel) -> dict[str, Any]:
    """The submission as JSON-able data with every secret replaced by REDACTED."""
    out: dict[str, Any] = {}
    for name in type(sub).model_fields:
        value = getattr(sub, name)
        if _is_secret(type(sub), name) or isinstance(value, SecretStr | SecretBytes):
            out[name] = REDACTED if value not in (None, "") else value
        else:
            out[name] = _redact_value(value)
    extra = sub.model_extra or {}
    for k, v in extra.items():
        out[k] = REDACTED if _SECRET_ENV.search(k) else _redact_value(v)
    return out


def _redact_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return redact(value)
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        # e.g. an env mapping: values of secret-looking names are redacted like a process's env
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_ENV.search(k) and v not in (None, "") else _redact_value(v))
            for k, v in value.items()
        }
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):
        return value.value  # enums
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def secret_values(sub: BaseModel) -> list[str]:
    """Every value `redact` hides, so every other text (titles, argv, cwd, output…) can be scrubbed of
    them: secret fields, SecretStr values, and values under secret-looking names (`env.API_TOKEN`)."""
    found: list[str] = []
    for name in type(sub).model_fields:
        value = getattr(sub, name)
        if _is_secret(type(sub), name) and isinstance(value, str):
            found.append(value)
        else:
            found.extend(_secrets_in(value))
    for k, v in (sub.model_extra or {}).items():
        found.extend(_all_strings(v) if _SECRET_ENV.search(k) else _secrets_in(v))
    # longest first: a secret that contains another one is replaced whole
    return sorted({s for s in found if s}, key=lambda s: (-len(s), s))


def _secrets_in(value: Any) -> list[str]:
    """Hidden values anywhere inside a value (nested models, lists, dict values)."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, SecretBytes):
        return [value.get_secret_value().decode("utf-8", "replace")]
    if isinstance(value, BaseModel):
        return secret_values(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [s for v in value for s in _secrets_in(v)]
    if isinstance(value, dict):
        return [
            s for k, v in value.items()
            for s in (_all_strings(v) if isinstance(k, str) and _SECRET_ENV.search(k) else _secrets_in(v))
        ]  # fmt: skip
    return []


def _all_strings(value: Any) -> list[str]:
    """Every string of a value stored under a secret-looking name (redact hides all of it)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _all_strings(v)]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for v in value for s in _all_strings(v)]
    return _secrets_in(value)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced (error reasons and warnings may quote what failed)."""
    for s in secrets:
        if s and s in text:
            text = text.replace(s, "***")
    return text


def scrub_data(data: Any, secrets: Sequence[str]) -> Any:
    """JSON-able data (a stored submission, a result) with every secret replaced in keys and values."""
    if not secrets:
        return data
    if isinstance(data, str):
        return scrub(data, secrets)
    if isinstance(data, list | tuple):
        return [scrub_data(v, secrets) for v in data]
    if isinstance(data, dict):
        return {scrub_data(k, secrets) if isinstance(k, str) else k: scrub_data(v, secrets) for k, v in data.items()}
    return data


def has_redactions(data: Any) -> bool:
    """True when stored submission data had secrets taken out (a rerun then needs them again)."""
    if data == REDACTED:
        return True
    if isinstance(data, dict):
        return any(has_redactions(v) for v in data.values())
    if isinstance(data, list):
        return any(has_redactions(v) for v in data)
    return False


def is_secret_env(name: str, secret_names: Iterable[str] = ()) -> bool:
    return name in set(secret_names) or bool(_SECRET_ENV.search(name))


_CONFIG_LINE = re.compile(r"^(\s*([A-Za-z0-9_.-]+)\s*=\s*)(\S.*)$")


def redact_config_lines(text: str) -> str:
    """Nix settings text (NIX_CONFIG) with the values of secret-looking settings redacted:
    `access-tokens = github.com=ghp_…` is how a GitHub token commonly reaches Nix."""
    lines = []
    for line in text.split("\n"):
        m = _CONFIG_LINE.match(line)
        lines.append(m.group(1) + REDACTED if m and _SECRET_ENV.search(m.group(2)) else line)
    return "\n".join(lines)


def redact_env(
    env: Mapping[str, str], secret_names: Iterable[str] = (), secrets: Iterable[str] = ()
) -> dict[str, str]:
    """Added environment as stored: values of secret-looking or declared-secret names, and values that
    hold one of the task's secrets, are redacted; so are secret settings inside NIX_CONFIG (which
    carries the user's own NIX_CONFIG merged in)."""
    names = set(secret_names)
    known = [s for s in secrets if s]
    return {
        k: (
            REDACTED if is_secret_env(k, names) or any(s in v for s in known)
            else redact_config_lines(v) if k == "NIX_CONFIG" else v
        )
        for k, v in env.items()
    }
