"""Packaging (issue 7): the Nix flake, the freedesktop files, the icons, and the wheel/sdist.

nixpkgs is not available offline, so the flake is parsed and evaluated against a small stub of
nixpkgs that records what the flake asks for; the desktop files go through Debian's validators;
the wheel and sdist are really built and installed into a fresh venv (deps from PyPI / pip's cache).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tomllib
import venv
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "packaging"
PKG = ROOT / "packaging"
APP_ID = "io.github.nixdeck.NixDeck"
DESKTOP = PKG / f"{APP_ID}.desktop"
METAINFO = PKG / f"{APP_ID}.metainfo.xml"
SVG = PKG / "icons" / "nixdeck.svg"
ICON_SIZES = (64, 128, 256)
SCREENSHOT_URL = "https://raw.githubusercontent.com/nixdeck/nixdeck/main/docs/screenshots/main-window.png"

# PyPI distribution name (PEP 503 normalised) -> nixpkgs python3Packages attribute.
PYPI_TO_NIXPKGS = {
    "pyside6-essentials": "pyside6",
    "qasync": "qasync",
    "asyncssh": "asyncssh",
    "pydantic": "pydantic",
    "platformdirs": "platformdirs",
    "orjson": "orjson",
    "tomlkit": "tomlkit",
    "cel-python": "cel-python",
}

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_dependency_names() -> set[str]:
    names = set()
    for req in PYPROJECT["project"]["dependencies"]:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        assert match, req
        names.add(_normalise(match.group(1)))
    return names


def _run(argv: list[str], timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload, no-any-return]


# --- Nix ---------------------------------------------------------------------------------------

@pytest.mark.nix
@pytest.mark.parametrize("name", ["flake.nix", "package.nix"])
def test_nix_files_parse(name: str) -> None:
    r = _run(["nix-instantiate", "--parse", str(ROOT / "nix" / name)])
    assert r.returncode == 0, r.stderr


def test_flake_dependencies_match_pyproject() -> None:
    text = (ROOT / "nix" / "package.nix").read_text()
    lists = re.findall(r"\bdependencies\s*=\s*with\s+python3Packages\s*;\s*\[(.*?)\]", text, re.S)
    assert len(lists) == 1, "expected exactly one `dependencies = with python3Packages; [ ... ]` list"
    body = re.sub(r"#[^\n]*", "", lists[0])
    in_flake = set(body.split())
    pypi = _pyproject_dependency_names()
    unknown = pypi - PYPI_TO_NIXPKGS.keys()
    assert not unknown, f"add a nixpkgs name for {sorted(unknown)} to PYPI_TO_NIXPKGS and nix/package.nix"
    assert in_flake == {PYPI_TO_NIXPKGS[n] for n in pypi}


# A stand-in for nixpkgs: just enough of lib and pkgs for the flake to evaluate, each package a
# string (or an attrset with an outPath) so the outputs can be read back as JSON.
STUB_EVAL = r"""
let
  flake = import (ROOT + "/nix/flake.nix");
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  lib = {
    inherit genAttrs;
    cleanSource = p: p;
    cleanSourceWith = { src, filter }: src;
    hasSuffix = suffix: s:
      let ls = builtins.stringLength s; lx = builtins.stringLength suffix;
      in ls >= lx && builtins.substring (ls - lx) lx s == suffix;
    makeBinPath = ps: builtins.concatStringsSep ":" (map (p: "${p}/bin") ps);
    licenses.mit = "mit";
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };
  names = [ "pyside6" "qasync" "asyncssh" "pydantic" "platformdirs" "orjson" "tomlkit" "cel-python" "setuptools" "wheel"
            "pytest" "pytest-qt" "pytest-timeout" "hypothesis" "mypy" "build" ];
  ps = genAttrs names (n: n) // {
    buildPythonApplication = a: a // { outPath = "/nix/store/stub-${a.pname}-${a.version}"; };
  };
  pkgsFor = system: let self = {
    stdenv.hostPlatform.system = system;
    inherit lib;
    python3Packages = ps;
    python3.withPackages = f: { python-env = f ps; };
    qt6 = genAttrs [ "wrapQtAppsHook" "qtbase" "qtsvg" "qtwayland" ] (n: "qt6.${n}");
    nix = "/nix/store/stub-nix"; openssh = "/nix/store/stub-openssh"; git = "/nix/store/stub-git";
    ruff = "ruff"; desktop-file-utils = "desktop-file-utils"; appstream = "appstream";
    mkShell = a: a;
    callPackage = f: over: let fn = import f; in
      fn (builtins.intersectAttrs (builtins.functionArgs fn) self // over);
  }; in self;
  nixpkgs = { inherit lib; legacyPackages = genAttrs [ "x86_64-linux" "aarch64-linux" "riscv64-linux" ] pkgsFor; };
  out = flake.outputs { self = out; inherit nixpkgs; };
  pkg = s: out.packages.${s}.default;
in {
  description = flake.description;
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  systems = builtins.attrNames out.packages;
  perSystem = genAttrs (builtins.attrNames out.packages) (s: {
    inherit (pkg s) pname version pyproject dependencies build-system nativeBuildInputs
      dontWrapQtApps makeWrapperArgs preFixup postInstall pythonRemoveDeps;
    mainProgram = (pkg s).meta.mainProgram;
    apps = builtins.mapAttrs (n: a: { inherit (a) type program; }) out.apps.${s};
    shell = out.devShells.${s}.default.packages;
  });
}
"""


@pytest.fixture(scope="module")
def flake_eval(nix_under_test: object) -> dict[str, object]:  # once per Nix of the matrix
    expr = f"let ROOT = {ROOT}; in " + STUB_EVAL
    r = _run(["nix-instantiate", "--eval", "--strict", "--json", "--expr", expr])
    assert r.returncode == 0, r.stderr
    result: dict[str, object] = json.loads(r.stdout)
    return result


@pytest.mark.nix
def test_flake_outputs_with_stub_nixpkgs(flake_eval: dict[str, object]) -> None:
    ev = flake_eval
    assert ev["nixpkgsUrl"] == "github:NixOS/nixpkgs/nixos-25.05"
    assert ev["systems"] == ["aarch64-linux", "x86_64-linux"]
    per = ev["perSystem"]
    assert isinstance(per, dict)
    pypi = _pyproject_dependency_names()
    for system, p in per.items():
        assert p["pname"] == PYPROJECT["project"]["name"], system
        assert p["version"] == PYPROJECT["project"]["version"], system
        assert p["pyproject"] is True and set(p["build-system"]) == {"setuptools", "wheel"}
        assert set(p["dependencies"]) == {PYPI_TO_NIXPKGS[n] for n in pypi}
        # the wheel's Requires-Dist names the PySide6-Essentials wheel; nixpkgs ships pyside6
        assert p["pythonRemoveDeps"] == ["PySide6-Essentials"]
        # Qt wrapping goes through the Python wrapper, with nix, ssh and git on PATH
        assert p["nativeBuildInputs"] == ["qt6.wrapQtAppsHook"] and p["dontWrapQtApps"] is True
        assert 'makeWrapperArgs+=("${qtWrapperArgs[@]}")' in p["preFixup"]
        assert p["makeWrapperArgs"] == ["--prefix", "PATH", ":",
                                        "/nix/store/stub-nix/bin:/nix/store/stub-openssh/bin:/nix/store/stub-git/bin"]
        assert p["mainProgram"] in PYPROJECT["project"]["gui-scripts"]
        out = f"/nix/store/stub-nixdeck-{p['version']}"
        assert p["apps"]["default"] == {"type": "app", "program": f"{out}/bin/nixdeck-gui"}
        assert p["apps"]["cli"] == {"type": "app", "program": f"{out}/bin/nixdeck"}
        env = p["shell"][0]["python-env"]
        assert {"pytest", "pytest-qt", "hypothesis", "mypy"} <= set(env)
        assert set(env) >= {PYPI_TO_NIXPKGS[n] for n in pypi}
        assert {"ruff", "/nix/store/stub-nix", "/nix/store/stub-openssh"} <= set(p["shell"][1:])


@pytest.mark.nix
def test_flake_installs_every_packaging_file(flake_eval: dict[str, object]) -> None:
    per = flake_eval["perSystem"]
    assert isinstance(per, dict)
    script: str = per["x86_64-linux"]["postInstall"]
    script = script.replace("${size}", "{size}")
    sources = re.findall(r"install -Dm644 (\S+)", script)
    expanded = {s.format(size=n) for s in sources for n in ICON_SIZES}
    for path in expanded:
        assert (ROOT / path).is_file(), path
    assert {str(p.relative_to(ROOT)) for p in (DESKTOP, METAINFO, SVG)} <= expanded
    assert "$out/share/applications" in script and "$out/share/metainfo" in script
    assert f"$out/share/icons/hicolor/scalable/apps/{APP_ID}.svg" in script


# --- freedesktop files -------------------------------------------------------------------------

def test_desktop_entry_validates() -> None:
    r = _run(["desktop-file-validate", str(DESKTOP)])
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if re.search(r": (error|warning): ", ln)]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
    entry = dict(ln.split("=", 1) for ln in DESKTOP.read_text().splitlines() if "=" in ln)
    assert entry["Icon"] == APP_ID
    assert entry["Exec"].split()[0] in PYPROJECT["project"]["gui-scripts"]


def test_metainfo_validates() -> None:
    r = _run(["appstreamcli", "validate", "--no-net", "--pedantic", str(METAINFO)])
    out = r.stdout + r.stderr
    problems = [ln for ln in out.splitlines() if re.match(r"\s*[EW]: ", ln)]
    assert r.returncode == 0 and not problems, out
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == DESKTOP.name
    assert root.findtext("project_license") == PYPROJECT["project"]["license"]
    images = [e.text for e in root.iter("image")]
    assert images == [SCREENSHOT_URL]
    assert PYPROJECT["project"]["version"] in [e.get("version") for e in root.iter("release")]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    w, h = struct.unpack(">II", head[16:24])
    return w, h


def test_icons_exist_at_their_sizes() -> None:
    svg = ET.parse(SVG).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.get("viewBox") == "0 0 256 256"
    for n in ICON_SIZES:
        assert _png_size(PKG / "icons" / "hicolor" / f"{n}x{n}" / "apps" / f"{APP_ID}.png") == (n, n)
    window_icons = ROOT / "resources" / "icons"
    assert (window_icons / "nixdeck.svg").read_bytes() == SVG.read_bytes(), "rerun packaging/render_icons.py"
    assert _png_size(window_icons / "nixdeck-256.png") == (256, 256)


# --- wheel and sdist ---------------------------------------------------------------------------

_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "result", "*.egg-info", "__pycache__",
                                     ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "screenshots")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A wheel and an sdist built with `python -m build` from a clean copy of the tree."""
    base = tmp_path_factory.mktemp("dists")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)
    r = _run([sys.executable, "-m", "build", "--outdir", str(base / "dist"), str(src)], timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wheel,) = (base / "dist").glob("nixdeck-*.whl")
    (sdist,) = (base / "dist").glob("nixdeck-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", QT_QPA_PLATFORM="offscreen")
    return env


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, dists: dict[str, Path]) -> Iterator[Path]:
    """One fresh venv per session with the wheel and its dependencies (pip's cache keeps it quick)."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    r = _run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", str(dists["wheel"])],
             timeout=900, env=_clean_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    yield root


def test_wheel_and_sdist_contents(dists: dict[str, Path]) -> None:
    wheel_names = set(zipfile.ZipFile(dists["wheel"]).namelist())
    for name in ("nixdeck/__init__.py", "nixdeck/cli.py", "nixdeck/py.typed",
                 "nixdeck/resources/icons/nixdeck.svg", "nixdeck/resources/icons/nixdeck-256.png",
                 "nixdeck/resources/demo/flake.nix", "nixdeck/resources/templates/new-project/flake.nix"):
        assert name in wheel_names, name
    with tarfile.open(dists["sdist"]) as tar:
        sdist_names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in ("pyproject.toml", "app/nixdeck/__init__.py", "resources/icons/nixdeck.svg", "resources/demo/flake.nix"):
        assert name in sdist_names, name


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_app_runs(kind: str, dists: dict[str, Path], fresh_venv: Path, tmp_path: Path) -> None:
    """Each artifact, installed into the fresh venv, gives working `nixdeck` entry points."""
    py = str(fresh_venv / "bin" / "python")
    env = _clean_env()
    r = _run([py, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(dists[kind])],
             timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    r = _run([py, "-c", "import nixdeck; print(nixdeck.__file__)"], env=env, cwd=tmp_path)
    installed = Path(r.stdout.strip())
    assert r.returncode == 0 and installed.is_relative_to(fresh_venv), r.stdout + r.stderr
    for icon in ("nixdeck.svg", "nixdeck-256.png"):  # the window icon ships with the package
        assert (installed.parent / "resources" / "icons" / icon).is_file(), icon

    nixdeck = str(fresh_venv / "bin" / "nixdeck")
    r = _run([nixdeck, "--version"], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"nixdeck {PYPROJECT['project']['version']}"

    sample = str(DATA / "eval-undef.internal-json.log")
    r = _run([nixdeck, "parse-log", sample], env=env, cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "undefined variable 'hostNmae'" in r.stdout
    r = _run([nixdeck, "parse-log", sample, "--json"], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (err,) = json.loads(r.stdout)["errors"]
    assert (err["line"], err["column"]) == (4, 58)
    assert (fresh_venv / "bin" / "nixdeck-gui").is_file()
