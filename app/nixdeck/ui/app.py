"""Start and stop the window: QApplication on a qasync loop, one instance per data dir, clean quit.

`NixDeckApp` owns the store, engine, bridge and window of one run. Quitting with tasks still
running asks first (a non-blocking `QMessageBox.open()`), then cancels them through the engine and
waits until they are recorded before the loop stops. Uncaught errors (Qt slots via sys.excepthook,
asyncio callbacks via the loop's exception handler) are shown in the window and logged, never fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hashlib
import logging
import logging.handlers
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QMessageBox, QStyle

from nixdeck.core.paths import default_data_dir, ensure_data_dir
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.store import TaskStore
from nixdeck.ui.bridge import EngineBridge
from nixdeck.ui.gc_thread import GuiThreadCollector
from nixdeck.ui.mainwindow import MainWindow
from nixdeck.ui.notify import LONG_TASK_SECONDS, TaskNotifier

log = logging.getLogger(__name__)

APP_NAME = "NixDeck"
ORG_NAME = "nixdeck"
def _icon_path() -> Path:
    from nixdeck.core.project.resources import resource

    try:
        return resource("icons", "nixdeck.svg")
    except FileNotFoundError:
        return Path("/nonexistent")


ICON_PATH = _icon_path()
LOCK_NAME = "gui.lock"
EXIT_ALREADY_RUNNING = 3
OPERATIONS_DELAY_MS = 50
QUIET_LOGGERS = ("asyncssh", "qasync")


def ui_settings(data_dir: Path) -> QSettings:
    """Window state lives beside the history (so each data dir, and each test, has its own)."""
    return QSettings(str(data_dir / "ui.ini"), QSettings.Format.IniFormat)


def app_icon() -> QIcon:
    if ICON_PATH.is_file():
        icon = QIcon(str(ICON_PATH))
        if not icon.isNull():
            return icon
    app = QApplication.instance()
    style = app.style() if isinstance(app, QApplication) else None
    return style.standardIcon(QStyle.StandardPixmap.SP_ComputerIcon) if style is not None else QIcon()


def server_name(data_dir: Path) -> str:
    """The local socket name of the instance that owns a data dir."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return f"nixdeck-{os.getuid()}-{digest}"


class SingleInstance(QObject):
    """One window per data dir: an flock on `DATA_DIR/gui.lock` decides, a local socket lets a second
    start ask the first to raise its window.

    Signals:
        raiseRequested(): another start asked this instance to show its window.
    """

    raiseRequested = Signal()

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.data_dir = data_dir
        self.name = server_name(data_dir)
        self._fd: int | None = None
        self.server: QLocalServer | None = None

    def acquire(self) -> bool:
        """True when this process now owns the data dir; False when another instance does."""
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        QLocalServer.removeServer(self.name)  # a stale socket of a crashed instance
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self.server.listen(self.name):
            log.warning("cannot listen on %s: %s", self.name, self.server.errorString())
        self.server.newConnection.connect(self._on_connection)
        return True

    def _on_connection(self) -> None:
        assert self.server is not None
        while self.server.hasPendingConnections():
            sock = self.server.nextPendingConnection()
            sock.readyRead.connect(lambda s=sock: self._on_ready(s))
            sock.disconnected.connect(sock.deleteLater)

    def _on_ready(self, sock: QLocalSocket) -> None:
        data = bytes(sock.readAll().data())
        if b"raise" in data:
            self.raiseRequested.emit()
        sock.disconnectFromServer()

    def ask_to_raise(self, timeout_ms: int = 1000) -> bool:
        """Ask the running instance to show its window (blocking; used before any loop runs)."""
        sock = QLocalSocket()
        sock.connectToServer(self.name)
        if not sock.waitForConnected(timeout_ms):
            return False
        sock.write(b"raise\n")
        sock.flush()
        sock.waitForBytesWritten(timeout_ms)
        sock.disconnectFromServer()
        return True

    def release(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ExceptionReporter:
    """Shows uncaught errors in the window (status bar and a non-modal message) and logs them."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self._old_hook: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.count = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._old_hook = sys.excepthook
        sys.excepthook = self.excepthook
        self._loop = loop
        loop.set_exception_handler(self.loop_handler)

    def uninstall(self) -> None:
        if self._old_hook is not None and sys.excepthook == self.excepthook:
            sys.excepthook = self._old_hook
        self._old_hook = None
        if self._loop is not None:
            self._loop.set_exception_handler(None)
            self._loop = None

    def excepthook(self, etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(etype, KeyboardInterrupt):
            self.window.quitRequested.emit()
            return
        self.report(value, tb)

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            self.report(exc, exc.__traceback__, context.get("message"))
        else:
            self.count += 1
            log.error("asyncio: %s", context.get("message", context))
            self.window.show_status(f"Internal error: {context.get('message', '')}", 15000)

    def report(self, exc: BaseException, tb: TracebackType | None, where: str | None = None) -> None:
        self.count += 1
        log.error("unexpected error%s", f" ({where})" if where else "", exc_info=(type(exc), exc, tb))
        summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        detail = "".join(traceback.format_exception(type(exc), exc, tb)[-6:])
        try:
            self.window.show_error("Unexpected error", f"{summary}\n\nThe details are in the log.\n\n{detail}")
        except Exception:  # noqa: BLE001 - never let the reporter raise in turn
            log.exception("cannot show the error in the window")


class NixDeckApp(QObject):
    """One run of the window: store, engine, bridge, window, notifier.

    The operations are registered right after the window is shown (`MainWindow.ensure_operations`;
    the SSH ones import asyncssh, ~0.2 s), and before any action submits, whichever comes first.

    Signals:
        closed(): everything was shut down (tasks canceled and recorded, store closed).
    """

    closed = Signal()

    def __init__(self, data_dir: Path | None = None, *, project: str | None = None,
                 notify_after: float = LONG_TASK_SECONDS, max_concurrent: int = 4) -> None:
        super().__init__()
        qapp = QApplication.instance()
        if isinstance(qapp, QApplication):  # closing the window must not stop the loop before cleanup
            qapp.setQuitOnLastWindowClosed(False)
        self.data_dir = ensure_data_dir(data_dir or default_data_dir())
        self.settings = ui_settings(self.data_dir)
        self.project_arg = project
        self.store = TaskStore(self.data_dir)
        self.engine = TaskEngine(self.store, max_concurrent=max_concurrent)
        self.bridge = EngineBridge(self.engine)
        self.bridge.watch_store(self.store)  # tasks the CLI or a scheduler starts appear live
        self.window = MainWindow(self.store, self.engine, self.bridge, self.settings)
        self.icon = app_icon()
        self.window.setWindowIcon(self.icon)
        self.notifier = TaskNotifier(self.icon, self._banner, self, min_seconds=notify_after,
                                     open_task=self.window.open_task_details)
        self.bridge.tasksChanged.connect(self.notifier.on_tasks_changed)
        self.window.quitRequested.connect(self.request_quit)
        self.reporter = ExceptionReporter(self.window)
        self.quit_box: QMessageBox | None = None
        self._shutting_down = False
        self._done: asyncio.Event | None = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self.recovery: asyncio.Task[list[int]] | None = None  # settling interrupted deploys (start)
        self.collector = GuiThreadCollector(self)

    def _banner(self, title: str, body: str, bad: bool, open_task: Callable[[], None] | None) -> None:
        self.window.show_banner(title, body, bad, action=("Open task", open_task) if open_task else None)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Show the window and open the project (`--project`, else the last one)."""
        self._done = asyncio.Event()
        self.collector.start()
        self.reporter.install(asyncio.get_running_loop())
        self.window.restore_ui_state()
        self.window.show()
        # after the first paint, not before it (the SSH operations import asyncssh, ~0.2 s)
        QTimer.singleShot(OPERATIONS_DELAY_MS, self.window.ensure_operations)
        # deploys interrupted when NixDeck last ended: settle their activations (confirm or roll back)
        QTimer.singleShot(OPERATIONS_DELAY_MS, self._recover_activations)
        if self.store.recovered:
            self.window.show_status(f"{len(self.store.recovered)} tasks were interrupted when NixDeck last ended", 10000)
        last = self.settings.value("project/last")
        path = self.project_arg or (str(last) if last else None)
        if path:
            await self.window.load_project(path)

    def _recover_activations(self) -> None:
        if self._shutting_down:
            return
        self.recovery = self.window.spawn(self._settle(), "Settling interrupted deploys")

    async def _settle(self) -> list[int]:
        from nixdeck.core.ops.deploy_recovery import recover_activations

        settled = await recover_activations(self.engine)
        if settled:
            self.window.show_status(f"Settled the activations of {len(settled)} interrupted deploys", 10000)
        return settled

    async def run(self) -> int:
        """Start, then wait until the user has quit and everything is shut down."""
        await self.start()
        assert self._done is not None
        await self._done.wait()
        return 0

    def raise_window(self) -> None:
        w = self.window
        w.showNormal() if w.isMinimized() else w.show()
        w.raise_()
        w.activateWindow()

    # -- quitting -------------------------------------------------------------------------------
    def request_quit(self) -> None:
        """Quit; when tasks still run, ask first (non-blocking) and cancel them on yes."""
        if self._shutting_down:
            return
        active = self.engine.running_ids()
        if not active:
            self.quit_now(cancel=True)
            return
        if self.quit_box is not None and self.quit_box.isVisible():
            self.quit_box.raise_()
            return
        n = len(active)
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Quit NixDeck",
            f"{n} task{'s are' if n != 1 else ' is'} still running or waiting.\n"
            "Quitting cancels them (their processes are stopped and they are recorded as canceled).",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self.window,
        )
        box.button(QMessageBox.StandardButton.Yes).setText("Cancel tasks and quit")
        box.button(QMessageBox.StandardButton.No).setText("Keep running")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.finished.connect(lambda result: self._on_quit_answer(result))
        self.quit_box = box
        box.open()

    def _on_quit_answer(self, result: int) -> None:
        self.quit_box = None
        if result == QMessageBox.StandardButton.Yes.value or result == QMessageBox.StandardButton.Yes:
            self.quit_now(cancel=True)

    def quit_now(self, *, cancel: bool = True) -> None:
        if self._shutting_down:
            return
        self._shutting_down = True
        self._shutdown_task = asyncio.ensure_future(self.shutdown(cancel=cancel))

    async def shutdown(self, *, cancel: bool = True) -> None:
        """Cancel running tasks, wait until they are recorded, save the window, close the store."""
        self._shutting_down = True
        self.window.prober.stop()
        if self.recovery is not None and not self.recovery.done():
            self.recovery.cancel()
        n = len(self.engine.running_ids())
        if n:
            self.window.show_status(f"Canceling {n} task{'s' if n != 1 else ''}…", 0)
        try:
            await self.engine.close(cancel=cancel)
        except Exception:  # noqa: BLE001 - quitting must finish even if a cancel went wrong
            log.exception("closing the engine failed")
        self.bridge.flush()
        self.window.save_ui_state()
        self.bridge.close()
        self.notifier.close()
        self.reporter.uninstall()
        self.window.may_close = True
        self.window.close()
        self.store.close()
        self.collector.stop()
        if self._done is not None:
            self._done.set()
        self.closed.emit()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nixdeck gui", description="The NixDeck window.")
    p.add_argument("--project", help="open this project (a flake directory); default: the last one")
    p.add_argument("--data-dir", help="history and logs (default: NIXDECK_DATA_DIR or the user data dir)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(list(argv))


def setup_logging(data_dir: Path, verbose: bool) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_nixdeck_gui", False) for h in root.handlers):
        return
    handler = logging.handlers.RotatingFileHandler(data_dir / "gui.log", maxBytes=2_000_000, backupCount=2)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._nixdeck_gui = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # asyncssh logs every connection and channel at INFO (hundreds of lines per deploy): the app log
    # at INFO carries NixDeck's own lines; --verbose shows asyncssh's too
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


def no_display() -> bool:
    """True when Qt would abort for want of a screen (rather than print a clear message)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: Sequence[str] | None = None) -> int:
    """`nixdeck gui`, `python -m nixdeck` and the `nixdeck-gui` script."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.data_dir:
        os.environ["NIXDECK_DATA_DIR"] = args.data_dir
    try:
        data_dir = ensure_data_dir(Path(args.data_dir) if args.data_dir else None)
    except Exception as e:  # noqa: BLE001 - a clear line, not a traceback
        print(f"nixdeck: {e}", file=sys.stderr)
        return 1
    setup_logging(data_dir, args.verbose)
    existing = QApplication.instance()
    if existing is None and no_display():
        print("nixdeck: no display to open the window on: set DISPLAY (X11) or WAYLAND_DISPLAY, or "
              "QT_QPA_PLATFORM=offscreen to run it headless; the CLI (`nixdeck --help`) needs no display",
              file=sys.stderr)
        return 2
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0] if sys.argv else "nixdeck"])
    app.setOrganizationName(ORG_NAME)
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("io.github.nixdeck.NixDeck")  # the desktop entry in packaging/
    app.setQuitOnLastWindowClosed(False)

    instance = SingleInstance(data_dir)
    if not instance.acquire():
        print(f"NixDeck is already running for {data_dir}", file=sys.stderr)
        instance.ask_to_raise()
        return EXIT_ALREADY_RUNNING

    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        nix = NixDeckApp(data_dir, project=args.project)
    except Exception as e:  # noqa: BLE001 - e.g. a history written by a newer NixDeck
        print(f"nixdeck: {e}", file=sys.stderr)
        instance.release()
        loop.close()
        return 1
    instance.raiseRequested.connect(nix.raise_window)

    def on_signal(_signum: int, _frame: Any) -> None:
        loop.call_soon_threadsafe(lambda: nix.quit_now(cancel=True))

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    wake = QTimer()  # lets Python run its signal handlers while Qt waits for events
    wake.start(300)
    wake.timeout.connect(lambda: None)
    try:
        return int(loop.run_until_complete(nix.run()))
    finally:
        wake.stop()
        instance.release()
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
