"""Ids that older identity rules gave and that name another id now, where the
new one is certain: rules and usage history stored under the old id are
moved to the new one when the helper starts (rule_codec.rename_rules,
UsageStore.rename_app_ids), so they follow the application.

Certain, and so renamed:
- "exe:" or "script:" /snap/<snap>/<revision>/... -> "snap:<snap>" (every
  refresh gave a new id);
- "exe:" or "script:" of a program one installed .desktop file runs ->
  "app:<desktop id>", as identify() names it now (for a user's rule or
  history, as that user's own .desktop files see it).
Not renamed, since nothing stored says where the process ran: an AppImage's
old "exe:/tmp/.mount_<random>/..." ids (a new one at every launch, no rule
could follow them anyway), a service's "exe:" ids (the same program also
runs outside the service), a Flatpak's "exe:/app/..." ids. An id whose path
had to be escaped or shortened is left as it is.
"""

from __future__ import annotations

from chadthrottle.helper.identity.desktop_catalog import DEFAULT_CATALOG, DesktopCatalog
from chadthrottle.helper.identity.escaping import bounded_app_id, escape_text
from chadthrottle.helper.identity.origins import snap_of_path

_FILE_KINDS = ("exe", "script")


def certain_rename(
    app_id: str, uid: int | None, catalog: DesktopCatalog = DEFAULT_CATALOG
) -> str | None:
    """The id the processes that had app_id get now, if certain and not app_id;
    uid: whose rule or history it is (None or negative: the administrator's,
    or an unknown user's: only the system's .desktop files count)."""
    kind, _, path = app_id.partition(":")
    if kind not in _FILE_KINDS or not path.startswith("/") or "\\" in path:
        return None
    snap = snap_of_path(path)
    if snap is not None:
        return f"snap:{snap}"
    entry = catalog.match((kind, path), uid if uid is not None and uid >= 0 else None)
    if entry is None:
        return None
    renamed = bounded_app_id("app", escape_text(entry.desktop_id))
    return renamed if renamed != app_id else None
