"""`python -m nixdeck.ui.screenshots OUTDIR`: pictures of the window for the docs, as `make run` shows it.

Runs the real app offscreen on a throw-away data dir with the embedded demo fleet, exactly as
`make run` starts it (its four simulated devices on 127.0.0.11-14, stopped at the end). Through the
window's own actions it builds every demo device, deploys all four as one fleet deploy, runs an SSH
command that fails on kiosk-1, and opens Trust host key on gateway (whose key it forgets first, then
trusts again), then saves into OUTDIR:

- `main-window.png`: devices with their last build/deploy, status, generation and drift, the Tasks dock with the finished fleet
  deploy expanded (final progress texts: "4/4 deployed", "deployed (confirmed)", "exited 2");
- `deploy-dialog.png`: the deploy dialog of the four, with each device's closure diff (the first open);
- `deploy-details.png`: the fleet deploy's details (per-device outcome, children);
- `ssh-command-details.png`: the failed SSH command's Process tab (connection, host key, the exact
  remote command and its OpenSSH equivalent);
- `trust-dialog.png`: the Trust host key dialog with the fingerprint to compare.

The demo block 127.0.0.11-14 must be free; as root, `make screenshots` runs this in a private
network namespace, so a running `make run` is not in the way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZE = (1280, 800)
DIALOG_SIZE = (680, 560)
DETAILS_SIZE = (1100, 720)
DEMO_DEVICES = ("gateway", "kiosk-1", "kiosk-2", "sensor-hub")
FAILING = ("kiosk-1", ["ls", "/var/lib/kiosk/playlist"])  # exits 2: no such file on the device
TRUSTED_AGAIN = "gateway"


async def _until(cond: Callable[[], Any], what: str, limit: float = 300.0) -> Any:
    async with asyncio.timeout(limit):
        while True:
            v = cond()
            if v:
                return v
            await asyncio.sleep(0.05)
    raise AssertionError(what)  # pragma: no cover - asyncio.timeout raises first


async def _shoot(nx: Any, outdir: Path) -> list[Path]:
    from nixdeck.core.ssh.knownhosts import KnownHosts
    from nixdeck.ui.details import TaskDetailsWindow
    from nixdeck.ui.dialogs import DeployDialog, HostKeyDialog, RunCommandDialog

    await nx.start()
    w = nx.window
    w.resize(*SIZE)
    store, engine = nx.store, nx.engine

    def new_ids(kind: str, seen: set[int]) -> list[int]:
        return [t.id for t in store.list_tasks(kinds=[kind]) if t.id not in seen]

    # every demo device builds
    w.select_devices(list(DEMO_DEVICES))
    w.commands.act("build")
    builds = await _until(lambda: len(new_ids("build_device", set())) == len(DEMO_DEVICES) and
                          new_ids("build_device", set()), "the builds are submitted")
    for tid in builds:
        await engine.wait(tid)
    # all four deploy, as one fleet deploy
    w.select_devices(list(DEMO_DEVICES))
    w.commands.act("deploy")
    dlg = w.commands.dialog
    assert isinstance(dlg, DeployDialog), dlg
    # the dialog's closure diff per device (computed in the background), the first one opened
    panel = w.commands.diff_panel
    assert panel is not None
    await _until(panel.done, "the closure diffs are computed")
    panel.topLevelItem(0).setExpanded(True)
    dlg.resize(*DIALOG_SIZE)
    await asyncio.sleep(0.3)
    dialog_picture = dlg.grab()
    dlg.accept()
    (deploy,) = await _until(lambda: new_ids("deploy_devices", set()), "the deploy is submitted")
    deployed = await engine.wait(deploy)
    # an SSH command fails on kiosk-1
    device, argv = FAILING
    w.select_devices([device])
    w.commands.act("run_command")
    run = w.commands.dialog
    assert isinstance(run, RunCommandDialog), run
    run.ssh.setChecked(True)
    run.command.setText(" ".join(argv))
    run.accept()
    (ssh,) = await _until(lambda: new_ids("ssh_command", set()), "the SSH command is submitted")
    failed = await engine.wait(ssh)
    # the probes after each device's deploy: the table's status, generation and drift columns
    await _until(lambda: all(w.model.device(w.model.row_of(d)).fleet for d in DEMO_DEVICES), "the devices are probed")
    print(f"builds done, deploy {deployed.state.value} ({deployed.phase}), ssh {failed.state.value} "
          f"({failed.phase})", file=sys.stderr)

    nx.bridge.flush()
    await asyncio.sleep(0.3)
    dock = w.tasks_dock
    for child in store.children(deploy):
        dock.select_task(child.id)  # expands the deploy
    dock.select_task(deploy)
    w.select_devices(list(DEMO_DEVICES[1:3]))
    w.table.setFocus()
    await asyncio.sleep(0.5)
    outdir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def save(widget: Any, name: str) -> None:
        path = outdir / name
        widget.grab().save(str(path))
        saved.append(path)

    save(w, "main-window.png")
    saved.append(outdir / "deploy-dialog.png")
    dialog_picture.save(str(saved[-1]))
    for tid, name, tab in ((deploy, "deploy-details.png", "Overview"), (ssh, "ssh-command-details.png", "Process")):
        details = w.open_task_details(tid)
        assert isinstance(details, TaskDetailsWindow)
        details.resize(*DETAILS_SIZE)
        details.show_tab(tab)
        await asyncio.sleep(0.6)
        save(details, name)
        details.close()

    # Trust host key on a device whose key NixDeck no longer knows (trusted again afterwards)
    row = w.model.device(w.model.row_of(TRUSTED_AGAIN))
    assert row.host is not None
    KnownHosts.in_data_dir(store.data_dir).forget(row.host, row.port)
    w.select_devices([TRUSTED_AGAIN])
    w.commands.act("trust_host")
    trust = w.commands.dialog
    assert isinstance(trust, HostKeyDialog), trust
    await _until(lambda: trust.fingerprint.text(), "the fingerprint is shown", 60)
    await asyncio.sleep(0.3)
    save(trust, "trust-dialog.png")
    trust.trust_button.click()

    nx.quit_now()
    if nx._done is not None:
        await nx._done.wait()
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nixdeck.ui.screenshots")
    p.add_argument("outdir", type=Path, help="where the PNGs go (the docs use docs/screenshots)")
    p.add_argument("--first-octet", type=int, default=None,
                   help="the demo devices listen on 127.0.0.N from this N on (default: the demo's, 11, as `make run`)")
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
