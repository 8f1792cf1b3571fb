"""Every model, imported in one place for Alembic and for `Base.metadata`."""

from lifecycle.inbox.models import InboxEvent
from lifecycle.operations.models import Operation
from lifecycle.shipments.models import Shipment, Transition

__all__ = ["InboxEvent", "Operation", "Shipment", "Transition"]
