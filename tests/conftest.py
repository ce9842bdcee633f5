"""Shared pytest fixtures: every test gets its own data dir and Nix caches; the Nix matrix.

Tests marked `nix` run once per controller-side Nix of `--nix-versions` (see tests/nix_matrix.py);
their ids name the version (`test_build[nix-2.34.8]`). Fixtures that run Nix themselves (also
module-scoped ones) take `nix_under_test` so they run with the version of their tests.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nix_matrix import DEFAULT_VERSIONS, MatrixError, NixSwitch, NixUnderTest, resolve, session_binds

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["NO_COLOR"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--nix-versions",
        default=os.environ.get("NIXDECK_TEST_NIX_VERSIONS", DEFAULT_VERSIONS),
        help="controller-side Nix versions the `nix` tests run on, comma-separated: `system` (nix on PATH), "
        "a Debian suite (trixie, sid: its Nix from a cached Debian root) or a path to a nix binary "
        f"(default {DEFAULT_VERSIONS}; env NIXDECK_TEST_NIX_VERSIONS)",
    )


class _Matrix:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.switch = NixSwitch()
        self._nixes: list[NixUnderTest] | None = None

    def nixes(self) -> list[NixUnderTest]:
        """The versions, resolved on first use (creating missing Debian roots)."""
        if self._nixes is None:
            specs = [s for s in str(self.config.getoption("--nix-versions")).split(",") if s.strip()]
            if not specs:
                raise pytest.UsageError("--nix-versions is empty")
            try:
                if any(s.strip() != "system" and not s.strip().startswith("/") for s in specs):
                    self.switch.go_private()
                base = self.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
                binds = session_binds(Path(base))
                self._nixes = [resolve(s, Path(base) / "nix-matrix", binds) for s in specs]
            except MatrixError as e:
                raise pytest.UsageError(f"Nix matrix: {e}") from None
            labels = [n.label for n in self._nixes]
            if len(set(labels)) != len(labels):
                raise pytest.UsageError(f"Nix matrix: the same version twice in --nix-versions ({', '.join(labels)})")
        return self._nixes


_matrix_key = pytest.StashKey[_Matrix]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_matrix_key] = _Matrix(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    m = config.stash.get(_matrix_key, None)
    if m is not None:
        m.switch.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    m = config.stash[_matrix_key]
    if m._nixes is None:
        return None
    return "nix matrix: " + ", ".join(f"{n.name}={n.version}" for n in m._nixes)


def pytest_collection_finish(session: pytest.Session) -> None:
    m = session.config.stash[_matrix_key]
    if m._nixes is not None:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line("nix matrix: " + ", ".join(f"{n.name}={n.version}" for n in m._nixes))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("nix") is None or "nix_under_test" not in metafunc.fixturenames:
        return
    nixes = metafunc.config.stash[_matrix_key].nixes()
    pick = metafunc.definition.get_closest_marker("nix_pick")
    if pick is not None and nixes:
        nixes = [nixes[int(pick.args[0]) % len(nixes)]]
    metafunc.parametrize("nix_under_test", nixes, indirect=True, ids=[n.label for n in nixes], scope="module")


@pytest.fixture(scope="module")
def nix_under_test(request: pytest.FixtureRequest) -> NixUnderTest | None:
    """The controller-side Nix of this test (None outside the matrix: the system one), made current."""
    nix: NixUnderTest | None = getattr(request, "param", None)
    request.config.stash[_matrix_key].switch.activate(nix)
    return nix


@pytest.fixture(autouse=True)
def _nix_for_this_test(request: pytest.FixtureRequest, nix_under_test: NixUnderTest | None) -> None:
    """PATH and /nix of this test's Nix (the system one for tests not marked `nix`)."""
    nix = nix_under_test if request.node.get_closest_marker("nix") is not None else None
    request.config.stash[_matrix_key].switch.activate(nix)


@pytest.fixture(autouse=True)
def _automatic_gc_after_each_test() -> Iterator[None]:
    """A window that was started but never shut down leaves collection on its own GUI-thread timer
    (nixdeck.ui.gc_thread): give the next test the interpreter's automatic collection back."""
    yield
    if not gc.isenabled():
        gc.enable()


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Per-test XDG cache (Nix eval/fetch caches) and NixDeck data dir."""
    cache = tmp_path / "xdg-cache"
    cache.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("NIXDECK_DATA_DIR", str(tmp_path / "nixdeck-data"))
    yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The NixDeck data dir of this test (the same as NIXDECK_DATA_DIR)."""
    d = tmp_path / "nixdeck-data"
    d.mkdir(exist_ok=True)
    return d
