"""Seeing inside the running service: structured logs, the /metrics collectors, `manage.py status`."""
