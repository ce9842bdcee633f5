"""Automation runs (kind ``automation``): the operation lives in ``core.automation.runner``."""

from __future__ import annotations

from nixdeck.core.automation.runner import OPERATIONS

__all__ = ["OPERATIONS"]
