"""`python -m nixdeck.ui.screenshots OUTDIR`: pictures of the window for the docs.

Runs the real app offscreen on a throw-away data dir with the embedded demo fleet (its simulated
devices started on 127.0.0.61+, stopped at the end), plus the test fleet's `bad-undef` device added to
the demo copy so one build fails. Through the window's own actions it builds every demo device,
deploys two of them and builds the broken one, then saves into OUTDIR:

- `main-window.png`: devices with their last build/deploy, the Tasks dock with completed and failed
  tasks and the deploy expanded;
- `task-details.png`: the failed build on its Errors pane (file:line and trace);
- `deploy-details.png`: the deploy parent's details (per-device outcome, children).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

BROKEN = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "fleet" / "devices" / "bad-undef.nix"
FIRST_OCTET = 61
SIZE = (1280, 800)
DETAILS_SIZE = (1100, 720)
DEMO_BUILT = ("gateway", "kiosk-1", "kiosk-2", "sensor-hub")
DEPLOYED = ("kiosk-1", "kiosk-2")
GIT_ENV = {"GIT_AUTHOR_NAME": "NixDeck", "GIT_AUTHOR_EMAIL": "demo@nixdeck.invalid",
           "GIT_COMMITTER_NAME": "NixDeck", "GIT_COMMITTER_EMAIL": "demo@nixdeck.invalid", "GIT_CONFIG_NOSYSTEM": "1"}


def prepare_fleet(fleet: Path) -> None:
    """Add the test fleet's device with a typo (undefined variable), committed so the flake sees it."""
    shutil.copy(BROKEN, fleet / "devices" / BROKEN.name)
    env = {**os.environ, **GIT_ENV}
    for args in (["add", "-A"], ["-c", "commit.gpgsign=false", "commit", "-q", "-m", "Screenshots: add a broken device"]):
        subprocess.run(["git", "-C", str(fleet), *args], env=env, check=True, capture_output=True)


async def _until(cond: Callable[[], Any], what: str, limit: float = 120.0) -> Any:
    async with asyncio.timeout(limit):
        while True:
            v = cond()
            if v:
                return v
            await asyncio.sleep(0.05)
    raise AssertionError(what)  # pragma: no cover - asyncio.timeout raises first


async def _shoot(nx: Any, outdir: Path) -> list[Path]:
    from nixdeck.ui.details import TaskDetailsWindow
    from nixdeck.ui.dialogs import DeployDialog

    await nx.start()
    w = nx.window
    w.resize(*SIZE)
    store, engine = nx.store, nx.engine

    def new_ids(kind: str, seen: set[int]) -> list[int]:
        return [t.id for t in store.list_tasks(kinds=[kind]) if t.id not in seen]

    # every demo device builds
    w.select_devices(list(DEMO_BUILT))
    w.commands.act("build")
    builds = await _until(lambda: len(new_ids("build_device", set())) == len(DEMO_BUILT) and
                          new_ids("build_device", set()), "the builds are submitted")
    for tid in builds:
        await engine.wait(tid)
    # two of them deploy
    w.select_devices(list(DEPLOYED))
    w.commands.act("deploy")
    dlg = w.commands.dialog
    assert isinstance(dlg, DeployDialog), dlg
    dlg.accept()
    (deploy,) = await _until(lambda: new_ids("deploy_devices", set()), "the deploy is submitted")
    deployed = await engine.wait(deploy)
    # the broken device fails
    w.select_devices(["bad-undef"])
    w.commands.act("build")
    (failing,) = await _until(lambda: new_ids("build_device", set(builds)), "the failing build is submitted")
    failed = await engine.wait(failing)
    print(f"builds done, deploy {deployed.state.value}, bad-undef {failed.state.value}", file=sys.stderr)

    nx.bridge.flush()
    await asyncio.sleep(0.3)
    dock = w.tasks_dock
    for child in store.children(deploy):
        dock.select_task(child.id)  # expands the deploy
    dock.select_task(deploy)
    w.select_devices(list(DEPLOYED))
    w.table.setFocus()
    await asyncio.sleep(0.5)
    outdir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def save(widget: Any, name: str) -> None:
        path = outdir / name
        widget.grab().save(str(path))
        saved.append(path)

    save(w, "main-window.png")
    for tid, name, tab in ((failing, "task-details.png", "Errors"), (deploy, "deploy-details.png", "Overview")):
        details = w.open_task_details(tid)
        assert isinstance(details, TaskDetailsWindow)
        details.resize(*DETAILS_SIZE)
        details.show_tab(tab)
        await asyncio.sleep(0.6)
        save(details, name)
        details.close()
    nx.quit_now()
    if nx._done is not None:
        await nx._done.wait()
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nixdeck.ui.screenshots")
    p.add_argument("outdir", type=Path, help="where the PNGs go (the docs use docs/screenshots)")
    p.add_argument("--first-octet", type=int, default=FIRST_OCTET,
                   help=f"the demo devices listen on 127.0.0.N from this N on (default {FIRST_OCTET})")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("NO_COLOR", "1")
    import qasync
    from PySide6.QtWidgets import QApplication

    from nixdeck.core.project.demo import start_demo, stop_demo
    from nixdeck.ui.app import NixDeckApp

    with tempfile.TemporaryDirectory(prefix="nixdeck-shots-") as tmp:
        work = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(work / "cache")
        data = work / "data"
        data.mkdir()
        demo = start_demo(data, first_octet=args.first_octet)
        try:
            prepare_fleet(demo.fleet)
            app = QApplication.instance() or QApplication(["nixdeck-screenshots"])
            assert isinstance(app, QApplication)
            app.setStyle("Fusion")
            loop = qasync.QEventLoop(app)
            asyncio.set_event_loop(loop)
            nx = NixDeckApp(data, project=str(demo.fleet))
            try:
                saved = loop.run_until_complete(_shoot(nx, args.outdir))
            finally:
                asyncio.set_event_loop(None)
                loop.close()
        finally:
            stop_demo(data)
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
