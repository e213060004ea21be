"""The detail pane under the list (pane.py) and its parts, one file each:
its words (words.py), the notes box (notes_box.py), the graph (traffic_graph.py,
direction_graph.py), the connections below it (connections_split.py,
connections_table.py) and the sizes its fold and fit are judged by (sizes.py)."""
