"""Show the rules dialog with its longest notes as the application sizes it, and
print each wrapped line's height against what its text needs (JSON), for
test_rules_dialog. Run in a subprocess, one screen size and scale each:

    QT_QPA_PLATFORM='offscreen:size=1366x768' QT_SCALE_FACTOR=2 python -m tests.gui.dialog_fit_probe
"""

from __future__ import annotations

import json

from chadthrottle.contract import Direction
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.units import UnitSystem
from PySide6.QtWidgets import QApplication, QLabel


def main() -> None:
    app = QApplication([])
    rules = AppRules("app:org.chadthrottle.demo.Harbor", "Harbor Browser",
                     quotas={Direction.UP: (10**6, 0, "day")}, held_by_quota={Direction.UP: 100_000})  # fmt: skip
    dialog = RulesDialog(rules, UnitSystem.BYTES_BINARY)
    dialog.show()
    for _ in range(10):
        app.processEvents()
    labels = [
        {
            "text": label.text()[:40],
            "height": label.height(),
            "needs": label.heightForWidth(label.width()),
        }
        for label in dialog.tabs.widget(0).findChildren(QLabel)
        if label.wordWrap() and label.text()
    ]
    print(json.dumps({"dialog": [dialog.width(), dialog.height()], "labels": labels}))


if __name__ == "__main__":
    main()
