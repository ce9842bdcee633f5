"""A deeply nested import document is refused with a clear message, never a RecursionError, and
nothing is written (the `project import` path; the check lives in core.jsondepth for every import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_fixtures import commit_all, copy_fleet
from nixdeck.core.jsondepth import JsonTooDeep, check_depth


def test_check_depth() -> None:
    check_depth(json.dumps({"a": [{"b": "[[[[{{{{ \\\" ]]"}] * 3}), limit=3)
    with pytest.raises(JsonTooDeep, match="deeper than 3 levels"):
        check_depth('{"a": [{"b": [1]}]}', limit=3)
    with pytest.raises(JsonTooDeep) as e:
        check_depth("{\n" + "[" * 100_000)
    assert e.value.line == 2


def test_deep_import_is_refused(tmp_path: Path) -> None:
    fleet = copy_fleet(tmp_path, salt="")
    (fleet / "nixdeck.toml").write_text('version = 1\n\n[devices.web1]\nhost = "10.0.0.1"\n')
    commit_all(fleet, "inventory")
    before = (fleet / "nixdeck.toml").read_bytes()
    deep = tmp_path / "deep.json"
    deep.write_text('{"format": "nixdeck-inventory", "version": 1, "devices": ' + "[" * 200_000 + "]" * 200_000 + "}")
    for args in (["project", "import", str(deep)], ["project", "import", "-"]):
        res = subprocess.run([sys.executable, "-m", "nixdeck", *args, "--project", str(fleet)],
                             input=deep.read_text() if args[-1] == "-" else None, capture_output=True, text=True,
                             timeout=120, env=os.environ)
        assert res.returncode == 1, res.stderr
        assert "RecursionError" not in res.stderr and "Traceback" not in res.stderr
        assert "nests deeper than 64 levels (at line 1)" in res.stderr.splitlines()[0], res.stderr
    assert (fleet / "nixdeck.toml").read_bytes() == before
