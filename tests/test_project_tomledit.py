"""NixDeck's edits of a hand-written nixdeck.toml keep the user's comments, order and blank lines;
automation tables are never touched by device edits; deep nesting is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from nixdeck.core.project import Project
from nixdeck.core.project.errors import InventoryFileError
from nixdeck.core.project.inventory import MAX_DEPTH, Inventory, dump_toml, from_json, parse_toml, render_toml
from test_project_inventory import inventories

HAND_WRITTEN = """\
# Our fleet. Reviewed in git: keep this header!
version = 1

[defaults]
user = "root"      # everyone logs in as root
port = 22

# ---- web tier ----
[devices.web1]
host = "10.0.0.1"  # the primary
tags = ["web"]     # more tags later

[devices.web2]
# web2 moves to the new rack in May
host = "10.0.0.2"

# ---- automations below ----

[groups.maintenance]
description = "Nightly upkeep"  # cron later
active = true

[automations.check]
# runs a quick check everywhere
description = "Check"
steps = [
  { name = "check", op = "ssh_command", with = { devices = "@all", argv = ["true"] } },  # one
]
"""


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    root = tmp_path / "p"
    root.mkdir()
    (root / "flake.nix").write_text("{ outputs = _: {}; }\n")
    (root / "nixdeck.toml").write_text(HAND_WRITTEN)
    return Project.open(root, discover_devices=False)


def text(project: Project) -> str:
    return project.inventory_path.read_text()


def test_every_edit_keeps_comments_order_and_blank_lines(project: Project) -> None:
    project.set_fields("web1", {"port": "2222"})
    after = text(project)
    # exactly one line added, nothing else changed
    assert after == HAND_WRITTEN.replace('tags = ["web"]     # more tags later\n',
                                         'tags = ["web"]     # more tags later\nport = 2222\n')
    project.set_fields("web1", {"host": "10.0.0.9"})
    assert 'host = "10.0.0.9"  # the primary' in text(project)
    project.tag(["web2"], "blue")
    project.set_defaults({"user": "deploy"})
    project.add_device("db1", {"host": "10.0.0.3", "tags": "db"})
    project.untag(["web1"], "web")
    t = text(project)
    for kept in ("# Our fleet. Reviewed in git: keep this header!", "# everyone logs in as root",
                 "# ---- web tier ----", "# web2 moves to the new rack in May", "# ---- automations below ----",
                 "# runs a quick check everywhere", "# cron later", "},  # one"):
        assert kept in t, kept
    assert 'user = "deploy"      # everyone logs in as root' in t
    assert t.index("[devices.web1]") < t.index("[devices.web2]") < t.index("[devices.db1]")
    assert "\n\n[devices.db1]\n" in t  # a new table gets the file's blank line before it
    # the automation tables are byte for byte what the user wrote
    assert t[t.index("[groups.maintenance]"):] == HAND_WRITTEN[HAND_WRITTEN.index("[groups.maintenance]"):]
    assert parse_toml(t) == project.inventory


def test_removing_a_device_keeps_the_comment_that_introduces_what_follows(project: Project) -> None:
    project.remove_device("web2")
    t = text(project)
    assert "[devices.web2]" not in t and "web2 moves" not in t
    assert "# ---- automations below ----" in t
    assert "[automations.check]" in t and project.inventory.automations["check"]["description"] == "Check"


def test_import_keeps_the_automations_and_the_style(project: Project, tmp_path: Path) -> None:
    exported = project.export_json()
    project.remove_device("web1")
    project.import_json_text(exported)
    t = text(project)
    assert t.index("[devices.web1]") < t.index("[devices.web2]")
    assert "# runs a quick check everywhere" in t and "[groups.maintenance]" in t
    assert parse_toml(t).devices == from_json(exported).devices


def test_a_compact_file_stays_compact(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    (root / "flake.nix").write_text("{}\n")
    (root / "nixdeck.toml").write_text('version = 1\n[devices.a]\nhost = "h1"\n[devices.b]\nhost = "h2"\n')
    project = Project.open(root, discover_devices=False)
    project.add_device("c", {"host": "h3"})
    assert text(project) == 'version = 1\n[devices.a]\nhost = "h1"\n[devices.b]\nhost = "h2"\n[devices.c]\nhost = "h3"\n'


def test_a_v0_file_is_migrated_in_place(tmp_path: Path) -> None:
    root = tmp_path / "v0"
    root.mkdir()
    (root / "flake.nix").write_text("{}\n")
    (root / "nixdeck.toml").write_text('# old\n[devices.gw]\ntarget = "admin@gw:2222"  # the gateway\n')
    project = Project.open(root, discover_devices=False)
    project.tag(["gw"], "edge")
    t = text(project)
    assert t.startswith("# old\n") and "target" not in t
    assert parse_toml(t).devices["gw"].port == 2222 and parse_toml(t).version == 1


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 100_000])
def test_deep_nesting_is_a_clear_error_never_a_recursion_error(depth: int) -> None:
    arrays = "version = 1\n[automations.x]\nsteps = " + "[" * depth + "]" * depth + "\n"
    tables = "version = 1\n[automations.x]\nwith = " + "{ a = " * depth + "1" + " }" * depth + "\n"
    for text in (arrays, tables):
        with pytest.raises(InventoryFileError) as exc:
            parse_toml(text)
        assert "nested more than" in str(exc.value)
    deep_json = '{"format": "nixdeck-inventory", "version": 1, "automations": {"x": ' + "[" * depth + "]" * depth + "}}"
    with pytest.raises(InventoryFileError) as exc:
        from_json(deep_json)
    assert "nested more than" in str(exc.value)


def _commented(text: str) -> str:
    """The text with a comment line before every table and after every key line (as a user writes)."""
    out = []
    for line in text.split("\n")[:-1]:
        if line.startswith("["):
            out.append("# about " + line.strip("[]"))
            out.append(line)
        elif "=" in line and not line.startswith("#"):
            out.append(line + "  # mine")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


@settings(max_examples=80, deadline=None)
@given(inventories, inventories)
def test_any_edit_of_a_commented_file_says_exactly_the_new_inventory(a: Inventory, b: Inventory) -> None:
    text = _commented(dump_toml(a))
    new = render_toml(text, b)
    assert parse_toml(new) == b
    kept = [line for line in text.split("\n") if line.startswith("# about devices.")]
    for line in kept:
        name = line.removeprefix("# about devices.")
        if name.strip('"') in b.devices or name in b.devices:
            assert line in new, line  # a device that stays keeps the comment above it
    if a.defaults == b.defaults and any(v is not None for v in a.defaults.model_dump().values()):
        assert "# about defaults" in new
