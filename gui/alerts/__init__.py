"""Desktop alerts: what happened (policy.py), said through the desktop's
notification service (notifier.py), fed by the helper connection (flow.py)."""
