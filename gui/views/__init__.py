"""Windows and their parts: the main window, the table, the detail pane."""
