"""17TRACK error codes and messages the simulator answers with (reference/17track.md §7).

The simulator keeps its own copy of every code, the three the service reacts to included: it stands
in for 17TRACK, so it must not share the service's definitions (a wrong code there would go unseen).
"""

from __future__ import annotations

from typing import Any

INVALID_KEY = -18010002
MISSING_DATA = -18010010
BAD_FORMAT = -18010012
INVALID_DATA = -18010013
TOO_MANY_NUMBERS = -18010014
BAD_FIELD_VALUE = -18010015
FINAL_CARRIER_NOT_POSTAL = -18010016
WEBHOOK_NOT_SET = -18010204
PUSH_FAILED = -18010206
MULTIPLE_CARRIERS = -18019801
BAD_CARRIER_NEW = -18019802
SAME_CARRIER = -18019803
NO_NEW_CARRIER = -18019804
CARRIER_OLD_WRONG = -18019805
CHANGE_STOPPED = -18019806
CHANGE_LIMIT = -18019807
NO_RESULT_YET = -18019808
DUPLICATE_REGISTRATION = -18019809
NOT_UNIQUE = -18019810
NOTHING_TO_CHANGE = -18019811
ALREADY_REGISTERED = -18019901
NOT_REGISTERED = -18019902
UNDETECTABLE = -18019903
RETRACK_NOT_STOPPED = -18019904
RETRACK_TWICE = -18019905
STOP_NOT_TRACKING = -18019906
DAILY_LIMIT = -18019907
QUOTA_OUT = -18019908
NO_INFO_YET = -18019909
BAD_CARRIER = -18019910

# Wording follows the verbatim doc examples where the reference has them (-18010012, -18019902,
# -18019904); the others paraphrase the §7 table.
_MESSAGES = {
    INVALID_KEY: "Invalid security key.",
    MISSING_DATA: "Please provide the data '{0}'.",
    BAD_FORMAT: "The format of '{0}' is invalid.",
    INVALID_DATA: "Invalid submitted data.",
    TOO_MANY_NUMBERS: "Tracking numbers exceed the 40 limit.",
    BAD_FIELD_VALUE: "The value '{0}' of field '{1}' is invalid.",
    FINAL_CARRIER_NOT_POSTAL: "Last-mile carrier can only be set for postal services.",
    WEBHOOK_NOT_SET: "Webhook URL not set, can't push data.",
    PUSH_FAILED: "Push failed.",
    MULTIPLE_CARRIERS: "The tracking number '{0}' is registered with multiple carriers, specify carrier_old.",
    BAD_CARRIER_NEW: "The carrier_new '{0}' is incorrect.",
    SAME_CARRIER: "The new carrier is the same as the current carrier.",
    NO_NEW_CARRIER: "You must specify carrier_new or final_carrier_new.",
    CARRIER_OLD_WRONG: (
        "The tracking number '{1}' for carrier '{0}' is not registered, or carrier_old is incorrect."
    ),
    CHANGE_STOPPED: "Cannot change the carrier of a stopped number.",
    CHANGE_LIMIT: "The carrier change limit has been exceeded.",
    NO_RESULT_YET: "Wait for the first tracking result before changing the carrier.",
    DUPLICATE_REGISTRATION: "The tracking number '{0}' is already registered with carrier '{1}'.",
    NOT_UNIQUE: "The update condition for '{0}' is not unique, specify the carrier.",
    NOTHING_TO_CHANGE: "The data to change is not valid.",
    ALREADY_REGISTERED: "The tracking number '{0}' has been registered, don't need to repeat registration.",
    NOT_REGISTERED: "The tracking number '{0}' does not register, please register first.",
    UNDETECTABLE: (
        "The carrier of '{0}' cannot be detected, specify it: "
        "https://res.17track.net/asset/carrier/info/apicarrier.all.json"
    ),
    RETRACK_NOT_STOPPED: "Retrack is not allowed. You can only retrack stopped number.",
    RETRACK_TWICE: "Retrack is not allowed. Each number can only be re-tracked once.",
    STOP_NOT_TRACKING: "Stop tracking is not allowed. You can only stop numbers being tracked.",
    DAILY_LIMIT: "The daily limit has been exceeded.",
    QUOTA_OUT: "The quota has run out.",
    NO_INFO_YET: "There is no tracking information for '{0}' at the moment.",
    BAD_CARRIER: "The carrier code '{0}' is incorrect.",
}


def message(code: int, *args: Any) -> str:
    return _MESSAGES[code].format(*args)


class ItemError(Exception):
    """One item refused; the endpoint turns it into a `rejected` entry and goes on."""

    def __init__(self, code: int, *args: Any) -> None:
        super().__init__(message(code, *args))
        self.code = code


class RequestError(Exception):
    """The whole request is refused with this code (the `data.errors` envelope, HTTP 200)."""

    def __init__(self, code: int, *args: Any) -> None:
        super().__init__(message(code, *args))
        self.envelope = request_error(code, *args)


def rejected(item: dict[str, Any], error: ItemError) -> dict[str, Any]:
    """A `rejected` entry: the number (and tag, as register echoes it) plus the error."""
    entry: dict[str, Any] = {"number": item.get("number")}
    if "tag" in item:
        entry["tag"] = item["tag"]
    entry["error"] = {"code": error.code, "message": str(error)}
    return entry


def request_error(code: int, *args: Any) -> dict[str, Any]:
    """The envelope of an error that refuses the whole request."""
    return {"code": code, "data": {"errors": [{"code": code, "message": message(code, *args)}]}}
