"""Outbound events: every shipment transition told to the operator's own systems (signed webhooks)."""
