"""Qt's constants that PySide6 does not export, said once."""

QWIDGETSIZE_MAX = (1 << 24) - 1  # Qt's bound on a widget's size: "no maximum"
