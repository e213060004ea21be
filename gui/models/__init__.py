"""Qt item models over the helper's data, owned by the GUI thread."""
