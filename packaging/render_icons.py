"""Render packaging/icons/nixdeck.svg to the PNG icons the desktop and the app window use.

Run from the repo root with the project venv (needs only PySide6's QtSvg, works offscreen):
    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/render_icons.py
Rerun it whenever the SVG changes; tests/test_packaging.py checks the outputs exist at the right sizes.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

APP_ID = "io.github.nixdeck.NixDeck"
SIZES = (64, 128, 256)
ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "packaging" / "icons" / "nixdeck.svg"
HICOLOR = ROOT / "packaging" / "icons" / "hicolor"
APP_ICONS = ROOT / "resources" / "icons"


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"invalid SVG: {SVG}", file=sys.stderr)
        return 1

    def render(size: int, out: Path) -> None:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        out.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(out)):
            raise OSError(f"cannot write {out}")
        print(out.relative_to(ROOT))

    for size in SIZES:
        render(size, HICOLOR / f"{size}x{size}" / "apps" / f"{APP_ID}.png")
    APP_ICONS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SVG, APP_ICONS / "nixdeck.svg")
    render(256, APP_ICONS / "nixdeck-256.png")
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
