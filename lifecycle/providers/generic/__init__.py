"""A generic signed-webhook provider: carriers and in-house systems that push their own events.

HMAC-SHA256 over the raw body with a shared secret, a small JSON body (number, status, event time),
and the sender's own status words mapped onto ours in configuration. There is no provider API:
numbers are tracked locally and stopping a delivered one needs no call.
"""
