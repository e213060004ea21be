"""The name a .desktop file gives an application, for one that no longer runs:
common/app_names.py holds it, one source for the window and the CLI."""

from __future__ import annotations

from chadthrottle.app_names import desktop_name

__all__ = ["desktop_name"]
