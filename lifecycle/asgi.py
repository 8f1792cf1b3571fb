"""ASGI entry point, what `manage.py serve` runs: gunicorn with uvicorn's workers, `lifecycle.asgi:app`.

Webhook POSTs are answered on the event loop (lifecycle/web/asgi.py); every other request goes to
the Flask app from `create_app`, in a pool of WEB_THREADS threads. `lifecycle.wsgi:app` is the same
service for a WSGI server.
"""

from lifecycle import create_app
from lifecycle.web.asgi import WebhookIntakeAsgi

_flask = create_app()
app = WebhookIntakeAsgi(_flask, flask_threads=_flask.config["SETTINGS"].web_threads)
