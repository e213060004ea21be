"""Small reusable widgets: the limit control and the sparkline."""
