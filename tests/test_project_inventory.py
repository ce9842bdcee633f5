"""The nixdeck.toml inventory: validation, round trips (TOML and JSON), migrations, overlays."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nixdeck.core.project import validate
from nixdeck.core.project.errors import InvalidValue, InventoryFileError
from nixdeck.core.project.inventory import (
    Defaults,
    DeviceEntry,
    Inventory,
    ProjectSettings,
    dump_toml,
    effective,
    from_json,
    parse_toml,
    to_json,
    updated,
)

names = st.from_regex(validate.NAME_RE, fullmatch=True)
label = st.from_regex(r"[a-z](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.lists(label, min_size=1, max_size=4).map(".".join),
)
users = st.from_regex(validate.USER_RE, fullmatch=True)
line_text = st.text(st.characters(blacklist_characters="\x00\r\n", blacklist_categories=("Cs",)), max_size=40)
paths = line_text.filter(lambda s: s != "" and not s.startswith("-"))


def opt(s: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | s


settings_fields = {
    "user": opt(users),
    "port": opt(st.integers(1, 65535)),
    "identity_file": opt(paths),
    "action": opt(st.sampled_from(["switch", "boot", "test", "dry-activate"])),
    "confirm": opt(st.booleans()),
    "rollback": opt(st.booleans()),
    "confirm_timeout": opt(st.integers(1, 3600)),
    "build_on": opt(st.sampled_from(["local", "target"])),
    "substitute_on_destination": opt(st.booleans()),
}
entries = st.builds(DeviceEntry, host=opt(hosts), tags=st.lists(names, unique=True, max_size=4), **settings_fields)
inventories = st.builds(
    Inventory,
    project=st.builds(
        ProjectSettings,
        builders=opt(line_text),
        builders_use_substitutes=opt(st.booleans()),
        max_jobs=opt(st.integers(0, 64) | st.just("auto")),
        no_check_sigs=opt(st.booleans()),
        signing_key=opt(paths),
    ),
    defaults=st.builds(Defaults, **settings_fields),
    devices=st.dictionaries(names, entries, max_size=5),
)


@settings(max_examples=150, deadline=None)
@given(inventories)
def test_toml_round_trip(inv: Inventory) -> None:
    text = dump_toml(inv)
    back = parse_toml(text)
    assert back == inv
    assert list(back.devices) == list(inv.devices)
    assert dump_toml(back) == text


@settings(max_examples=150, deadline=None)
@given(inventories)
def test_json_round_trip_is_exact(inv: Inventory) -> None:
    text = to_json(inv)
    back = from_json(text)
    assert back == inv
    assert to_json(back) == text
    assert parse_toml(dump_toml(back)) == inv


def test_nix_reads_the_toml_we_write(tmp_path: Path) -> None:
    inv = Inventory.model_validate({
        "project": {"builders": 'ssh://b1 x86_64-linux - 4 1 "kvm" \\ é', "max_jobs": "auto"},
        "devices": {"web1": {"host": "::1", "port": 2222, "tags": ["web", "edge"],
                             "identity_file": "/keys/id \"quoted\"\tx"}},
    })
    f = tmp_path / "nixdeck.toml"
    f.write_text(dump_toml(inv))
    res = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command flakes", "eval", "--impure", "--json", "--expr",
         f"builtins.fromTOML (builtins.readFile {f})"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["devices"]["web1"]["tags"] == ["web", "edge"]
    assert data["devices"]["web1"]["identity_file"] == "/keys/id \"quoted\"\tx"
    assert data["project"]["builders"] == inv.project.builders


def test_effective_settings_overlay() -> None:
    inv = parse_toml(
        'version = 1\n[defaults]\nuser = "deploy"\nport = 2200\nconfirm_timeout = 90\n'
        '[devices.a]\nhost = "10.0.0.1"\nport = 22\nrollback = false\n[devices.b]\ntags = ["x"]\n'
    )
    a = effective(inv.devices["a"], inv.defaults)
    assert (a.host, a.user, a.port, a.rollback, a.confirm, a.confirm_timeout, a.action) == (
        "10.0.0.1", "deploy", 22, False, True, 90, "switch")
    assert a.target == "deploy@10.0.0.1"
    b = effective(inv.devices["b"], inv.defaults)
    assert b.host is None and b.target is None and b.port == 2200 and b.tags == ("x",)
    none = effective(None, Defaults())
    assert (none.user, none.port, none.build_on, none.substitute_on_destination) == ("root", 22, "local", False)


def test_migration_from_v0() -> None:
    v0 = (
        '[defaults]\nuser = "root"\n'
        '[devices.gw]\ntarget = "admin@gw.example.org:2222"\ntags = ["edge"]\n'
        '[devices.gw.deploy]\naction = "boot"\nconfirm_timeout = 10\n'
        '[devices.v6]\ntarget = "[fd00::1]:22"\n'
        '[devices.plain]\ntarget = "10.1.1.1"\n'
    )
    inv = parse_toml(v0)
    assert inv.version == 1
    gw = inv.devices["gw"]
    assert (gw.host, gw.user, gw.port, gw.action, gw.confirm_timeout, gw.tags) == (
        "gw.example.org", "admin", 2222, "boot", 10, ["edge"])
    assert (inv.devices["v6"].host, inv.devices["v6"].port) == ("fd00::1", 22)
    assert inv.devices["plain"].host == "10.1.1.1" and inv.devices["plain"].user is None
    assert "version = 1" in dump_toml(inv) and "target =" not in dump_toml(inv)


def test_newer_version_is_refused() -> None:
    with pytest.raises(InventoryFileError) as exc:
        parse_toml("version = 2\n")
    assert exc.value.field == "version" and "newer" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "field", "value", "line"),
    [
        ('version = 1\n[devices.web1]\nhost = "10.0.0.1"\nport = "22"\n', "devices.web1.port", "22", 4),
        ('version = 1\n[devices.web1]\nport = 0\n', "devices.web1.port", 0, 3),
        ('version = 1\n[devices.web1]\nhost = "-oProxyCommand=x"\n', "devices.web1.host", "-oProxyCommand=x", 3),
        ('version = 1\n[devices.web1]\nhost = "a..b"\n', "devices.web1.host", "a..b", 3),
        ('version = 1\n[devices.web1]\nhost = "999.1.1.1"\n', "devices.web1.host", "999.1.1.1", 3),
        ('version = 1\n[devices.web1]\nuser = "-root"\n', "devices.web1.user", "-root", 3),
        ('version = 1\n[devices.web1]\ntags = ["ok", "not ok"]\n', "devices.web1.tags", "not ok", 3),
        ('version = 1\n[devices.web1]\ntags = ["a", "a"]\n', "devices.web1.tags", "a", 3),
        ('version = 1\n[devices.web1]\naction = "reboot"\n', "devices.web1.action", "reboot", 3),
        ('version = 1\n[devices.web1]\nconfirm = "yes"\n', "devices.web1.confirm", "yes", 3),
        ('version = 1\n\n[devices.my_host]\n', "devices.my_host", "my_host", 3),
        ('version = 1\n[devices.web1]\nprot = 22\n', "devices.web1.prot", 22, 3),
        ('version = 1\n[defaults]\nconfirm_timeout = 0\n', "defaults.confirm_timeout", 0, 3),
        ('version = 1\n[project]\nmax_jobs = "many"\n', "project.max_jobs", "many", 3),
        ('version = 1\n[project]\nbuilders = ["x"]\n', "project.builders", ["x"], 3),
    ],
)
def test_invalid_values_name_field_value_and_line(text: str, field: str, value: object, line: int) -> None:
    with pytest.raises(InvalidValue) as exc:
        parse_toml(text)
    err = exc.value
    assert (err.field, err.value, err.line) == (field, value, line)
    assert field in str(err)


def test_broken_toml_names_the_line() -> None:
    with pytest.raises(InventoryFileError) as exc:
        parse_toml('version = 1\n[devices.web1]\nhost = "10.0.0.1\n')
    assert exc.value.line == 3 and "line 3" in str(exc.value)


@pytest.mark.parametrize("host", ["web1", "web1.example.org", "WEB-1.example.org.", "10.0.0.1", "::1",
                                  "fe80::1%eth0", "2001:db8::5", "xn--bcher-kva.example"])
def test_valid_hosts(host: str) -> None:
    assert validate.host(host) == host


@pytest.mark.parametrize("host", ["", "-web", "web_1", "a" * 64, "[::1]", "::g", "1.2.3", "host name",
                                  "web1.123", "a;b", "h:22"])
def test_invalid_hosts(host: str) -> None:
    with pytest.raises(InvalidValue):
        validate.host(host)


@pytest.mark.parametrize("name", ["1web", "web-", "-web", "web_1", "web.1", "a" * 64, "", "wéb"])
def test_invalid_device_names(name: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        validate.device_name(name)
    assert exc.value.value == name


def test_lenient_updates_from_cli_strings() -> None:
    entry = updated(DeviceEntry(), {"port": "2222", "confirm": "no", "tags": "web, edge", "host": "h1"}, "devices.x.")
    assert (entry.port, entry.confirm, entry.tags, entry.host) == (2222, False, ["web", "edge"], "h1")
    entry = updated(entry, {"port": None}, "devices.x.")
    assert entry.port is None
    with pytest.raises(InvalidValue) as exc:
        updated(entry, {"port": "many"}, "devices.x.")
    assert exc.value.field == "devices.x.port"
    with pytest.raises(InvalidValue) as exc:
        updated(entry, {"port": "70000"}, "devices.x.")
    assert exc.value.field == "devices.x.port" and exc.value.value == 70000
    with pytest.raises(InvalidValue) as exc:
        updated(entry, {"colour": "red"}, "devices.x.")
    assert exc.value.field == "devices.x.colour"
    assert updated(ProjectSettings(), {"max_jobs": "8"}, "project.").max_jobs == 8
