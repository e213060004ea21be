"""ChadThrottle: per-application network monitor and bandwidth limiter.

This root package holds only what the GUI, the CLI and the helper share: the
D-Bus contract and the rate units. It must stay importable without Qt, bcc or
root.
"""
