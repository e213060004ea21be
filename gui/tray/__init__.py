"""The system tray icon: state at a glance, quick limits from the menu."""
