"""Without a screen the window says what to do instead of letting Qt abort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_no_display_is_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["NIXDECK_DATA_DIR"] = str(tmp_path / "data")
    res = subprocess.run([sys.executable, "-m", "nixdeck", "gui"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "no display to open the window on" in res.stderr and "QT_QPA_PLATFORM=offscreen" in res.stderr
    assert "Traceback" not in res.stderr and "qt.qpa" not in res.stderr
