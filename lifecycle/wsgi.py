"""WSGI entry point for gunicorn: `gunicorn lifecycle.wsgi:app`."""

from lifecycle import create_app

app = create_app()
