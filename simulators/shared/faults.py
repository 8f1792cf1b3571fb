"""Faults the simulators inject into their next API calls, one per call, in the order queued.

A fault is an HTTP status (the call is answered with it and changes nothing), `"timeout"` (the
call is held `timeout_seconds`, longer than a client waits, and then carried out: the provider did
the work but its answer is lost, so the client's retry must not double it) or `"reset"` (the
connection is dropped with a TCP reset, no answer, nothing done).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any

from werkzeug.wrappers import Request

TIMEOUT, RESET = "timeout", "reset"
KINDS = (TIMEOUT, RESET)

Fault = int | str


def parse(value: Any) -> Fault:
    """A queued fault from JSON: an HTTP status or one of KINDS."""
    if value in KINDS:
        return str(value)
    if isinstance(value, int | str) and str(value).isdigit() and 100 <= int(value) <= 599:
        return int(value)
    raise ValueError(f"unknown fault {value!r}: an HTTP status or one of {', '.join(KINDS)}")


def hold_or_drop(fault: Fault, request: Request, timeout_seconds: float) -> bool:
    """Apply a timeout or a reset; True when the call is dropped (its answer goes nowhere)."""
    if fault == TIMEOUT:
        time.sleep(timeout_seconds)
        return False
    if fault == RESET:
        reset_connection(request)
        return True
    return False


def reset_connection(request: Request) -> None:
    """Drop the client's connection with a TCP reset, as a crashing proxy would.

    The request body is read first (else the server would parse it as a next request); the
    connection's descriptor is then swapped, atomically, for one end of a closed socket pair: the
    kernel resets the real connection (linger 0) and the server finishes on a stand-in that reads
    end-of-file, so no other thread can ever be handed the freed descriptor number meanwhile.
    """
    request.get_data()  # cached: a no-op when the body was read already
    connection: socket.socket = request.environ["werkzeug.socket"]
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stand_in, other_end = socket.socketpair()
    other_end.close()
    os.dup2(stand_in.fileno(), connection.fileno())
    stand_in.close()
