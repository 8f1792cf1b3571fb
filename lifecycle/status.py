"""The one status vocabulary shared by every provider (DESIGN.md, "Minimal JSON shapes")."""

STATUSES = (
    "pending",
    "not_found",
    "info_received",
    "in_transit",
    "available_for_pickup",
    "out_for_delivery",
    "delivery_failure",
    "delivered",
    "exception",
    "expired",
    "returning",
    "returned",
)

# These change only on a strictly newer event (invariant 3).
TERMINAL_STATUSES = frozenset({"delivered", "returned", "expired"})

TRACKING_STATES = ("pending", "tracking", "stopping", "stopped", "deleted", "rejected")
