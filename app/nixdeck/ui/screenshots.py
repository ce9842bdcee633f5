"""`python -m nixdeck.ui.screenshots OUTDIR [--project DIR]`: pictures of the window for the docs.

Starts the real app offscreen on a throw-away data dir and a copy of the project (by default the
test fleet of this source tree), runs a good and a failing build (run commands where the build
operation is not there), and saves `main-window.png` and `task-details.png` into OUTDIR.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

FLEET = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "fleet"
SIZE = (1280, 800)
DETAILS_SIZE = (1100, 720)


def _prepare_project(src: Path, work: Path) -> Path:
    dest = work / src.name
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", "result*"))
    return dest


def _decorate(project: object) -> None:
    """Targets and tags, so the table shows what a real fleet looks like."""
    from nixdeck.core.project.project import Project

    assert isinstance(project, Project)
    names = {d.name for d in project.devices}
    hosts = {"web1": "10.20.0.11", "web2": "10.20.0.12", "db1": "10.20.0.21", "units-fail": "10.20.0.31"}
    for name, host in hosts.items():
        if name in names:
            project.set_fields(name, {"host": host})
    if "web2" in names:
        project.set_fields("web2", {"port": 2222, "user": "deploy"})
    for tag, members in {"web": ["web1", "web2"], "prod": ["web1", "web2", "db1"], "db": ["db1"],
                         "lab": ["units-fail", "slow-build", "big-log", "warn-trace"]}.items():
        present = [m for m in members if m in names]
        if present:
            project.tag(present, tag)


def _show_tab(window: object, name: str) -> None:
    """Bring a tab of the details window to the front when it has one by that name."""
    from PySide6.QtWidgets import QTabWidget, QWidget

    if not isinstance(window, QWidget):
        return
    for tabs in window.findChildren(QTabWidget):
        for i in range(tabs.count()):
            if tabs.tabText(i).replace("&", "").lower().startswith(name):
                tabs.setCurrentIndex(i)
                return


async def _shoot(nx: object, outdir: Path) -> list[Path]:
    from nixdeck.core.ops.run_command import RunCommandSubmission
    from nixdeck.ui.app import NixDeckApp

    assert isinstance(nx, NixDeckApp)
    await nx.start()
    w = nx.window
    w.resize(*SIZE)
    if w.project is not None:
        _decorate(w.project)
        w.set_project(w.project)
    engine = nx.engine
    project = str(w.project.path) if w.project is not None else None
    ids: list[int] = []
    failing: int | None = None
    if nx.window.commands.available("build_device") and w.project is not None:
        w.select_devices(["web1", "fail-build"])
        w.commands.act("build")
        for _ in range(200):
            await asyncio.sleep(0.05)
            ids = [t.id for t in nx.store.list_tasks(kinds=["build_device"])]
            if len(ids) >= 2:
                break
    else:
        def nix_build(device: str) -> RunCommandSubmission:
            attr = f".#nixosConfigurations.{device}.config.system.build.toplevel"
            return RunCommandSubmission(argv=["nix", "build", "--no-link", attr], device=device, cwd=project)

        good, bad = nix_build("web1"), nix_build("fail-build")
        ids = [await engine.submit("run_command", good, project=project),
               await engine.submit("run_command", bad, project=project)]
    results = [await engine.wait(i) for i in ids]
    if not ids:
        return []
    failing = next((t.id for t in results if not t.state.ok), ids[-1] if ids else None)
    nx.bridge.flush()
    await asyncio.sleep(0.5)
    w.select_devices(["web1"])
    await asyncio.sleep(0.2)
    outdir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    main_png = outdir / "main-window.png"
    w.grab().save(str(main_png))
    saved.append(main_png)
    if failing is not None:
        details = w.open_task_details(failing)
        if details is not None:
            details.resize(*DETAILS_SIZE)
            await asyncio.sleep(0.5)
            _show_tab(details, "stderr")
            await asyncio.sleep(0.8)
            png = outdir / "task-details.png"
            details.grab().save(str(png))
            saved.append(png)
    nx.quit_now()
    if nx._done is not None:
        await nx._done.wait()
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nixdeck.ui.screenshots")
    p.add_argument("outdir", type=Path)
    p.add_argument("--project", type=Path, help="project to show (copied first); default: the test fleet")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("NO_COLOR", "1")
    src = args.project or FLEET
    if not (src / "flake.nix").is_file():
        print(f"screenshots: {src} is not a flake directory", file=sys.stderr)
        return 2
    import qasync
    from PySide6.QtWidgets import QApplication

    from nixdeck.ui.app import NixDeckApp

    with tempfile.TemporaryDirectory(prefix="nixdeck-shots-") as tmp:
        work = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(work / "cache")
        project = _prepare_project(src, work)
        app = QApplication.instance() or QApplication(["nixdeck-screenshots"])
        assert isinstance(app, QApplication)
        app.setStyle("Fusion")
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        nx = NixDeckApp(work / "data", project=str(project))
        try:
            saved = loop.run_until_complete(_shoot(nx, args.outdir))
        finally:
            loop.close()
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
