"""Every model, imported in one place for Alembic and for `Base.metadata`."""

from lifecycle.accounting.models import BudgetAlert, LedgerEntry, UsageTotal
from lifecycle.admin.models import AdminUser, SignInThrottle
from lifecycle.api.tokens import ApiToken
from lifecycle.cleanup.models import Heartbeat, InboxRetry, JobAlert, JobRun
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations.models import Operation, ServiceState
from lifecycle.outbound.models import Delivery, DeliveryAttempt, Endpoint, OutboundEvent
from lifecycle.shipments.models import Shipment, Transition

__all__ = [
    "AdminUser",
    "ApiToken",
    "BudgetAlert",
    "Delivery",
    "DeliveryAttempt",
    "Endpoint",
    "Heartbeat",
    "InboxEvent",
    "InboxRetry",
    "JobAlert",
    "JobRun",
    "LedgerEntry",
    "Operation",
    "OutboundEvent",
    "ServiceState",
    "Shipment",
    "SignInThrottle",
    "Transition",
    "UsageTotal",
]
