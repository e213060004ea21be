"""Talking to the root helper without ever blocking the GUI thread."""
