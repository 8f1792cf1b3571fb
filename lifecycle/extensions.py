"""Extension singletons; each is bound to the app in the factory."""

from lifecycle.db import Database

db = Database()
