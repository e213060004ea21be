"""The detail pane's sizes: what its fold, its compact form and the room it
asks of the window are judged by (pane.py, connections_split.py, MainWindow)."""

# A window shorter than this (logical pixels: 2x on a 1366x768 screen is 384)
# starts with the connections table folded: open, it left the list of
# applications one and a half rows.
SHORT_WINDOW_HEIGHT = 560
# Taller, the connections table opens with room for this many rows: taken from
# the list as far as it keeps its rows (MainWindow), then from the graph down to
# its least. At 1x in a 1100x720 window it opened with two fifths of the
# pane, two rows, until the user dragged the line above it.
CONNECTION_ROWS_WANTED = 5
GRAPH_MIN_HEIGHT = 110
# Compact (DetailPane.set_compact): two lanes of about 28 px, as tall as the whole
# graph's lanes at its least (its time axis took the rest), and no time axis.
GRAPH_COMPACT_HEIGHT = 56
PANE_MARGIN, PANE_SPACING = 6, 6  # the pane's top and bottom margins, and between its lines
COMPACT_MARGIN, COMPACT_SPACING = 2, 2  # ... compact
