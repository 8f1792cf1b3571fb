"""Scheduled cleanup jobs: plain service functions, run by beat or by `manage.py cleanup JOB`."""
