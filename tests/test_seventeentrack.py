"""17TRACK facts: the signature test vector, status mapping and push parsing."""

from __future__ import annotations

import pytest

from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import pushes
from tests.helpers import at


def test_signature_matches_the_reference_test_vector():
    body = b'{"event":"TRACKING_UPDATED","data":{"number":"RR123456789CN","carrier":3011,"tag":null}}'
    expected = "45acb4a6f4a194a6ac1f0f712182c4e314b1ae9399941ea086987408f3166994"
    assert st.sign(body, "123456ABCDEF") == expected
    assert st.signature_is_valid(body, expected, "123456ABCDEF")
    assert not st.signature_is_valid(body, expected, "")


@pytest.mark.parametrize(
    ("main", "sub", "expected"),
    [
        ("NotFound", "NotFound_Other", ("not_found", "NotFound_Other")),
        ("InfoReceived", "InfoReceived", ("info_received", "InfoReceived")),
        ("InTransit", "InTransit_CustomsProcessing", ("in_transit", "InTransit_CustomsProcessing")),
        ("Expired", "Expired_Other", ("expired", "Expired_Other")),
        (
            "AvailableForPickup",
            "AvailableForPickup_Other",
            ("available_for_pickup", "AvailableForPickup_Other"),
        ),
        ("OutForDelivery", "OutForDelivery_Other", ("out_for_delivery", "OutForDelivery_Other")),
        ("DeliveryFailure", "DeliveryFailure_NoBody", ("delivery_failure", "DeliveryFailure_NoBody")),
        ("Delivered", "Delivered_Other", ("delivered", "Delivered_Other")),
        ("Exception", "Exception_Lost", ("exception", "Exception_Lost")),
        ("Exception", "Exception_Returning", ("returning", "Exception_Returning")),
        ("Exception", "Exception_Returned", ("returned", "Exception_Returned")),
        ("Exception", "Exception_Damaged", ("exception", "Exception_Damaged")),
        ("Teleported", "Teleported_Other", (None, "Teleported/Teleported_Other")),
    ],
)
def test_status_mapping(main, sub, expected):
    assert st.map_status(main, sub) == expected


def test_parse_uses_latest_event_time_in_utc():
    push = st.parse_push(pushes.encode(pushes.tracking_updated("RR1", 3011, "InTransit", None, at(5))))
    assert push.event_time == at(5) and push.status == "in_transit" and push.carrier == 3011


def test_parse_falls_back_to_time_iso_with_its_offset():
    payload = pushes.tracking_updated("RR1", 7041, "Exception", "Exception_Other", at(0))
    payload["data"]["track_info"]["latest_event"] = {
        "time_iso": "2022-09-14T08:47:00+01:00",
        "time_utc": None,
    }
    push = st.parse_push(pushes.encode(payload))
    assert push.event_time.isoformat() == "2022-09-14T07:47:00+00:00"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "malformed JSON"),
        (b'{"event":"TRACKING_UPDATED","data":{"number":"RR1"}}', "track_info"),
        (b'{"event":"TRACKING_UPDATED","data":{"number":"RR1","carrier":"x","track_info":{}}}', "carrier"),
        (
            b'{"event":"TRACKING_UPDATED","data":{"number":"RR1","track_info":'
            b'{"latest_event":{"time_utc":"yesterday"}}}}',
            "unreadable event time",
        ),
    ],
)
def test_parse_errors_say_why(body, reason):
    with pytest.raises(st.PushError, match=reason):
        st.parse_push(body)


def test_stopped_event_parses_without_track_info():
    push = st.parse_push(pushes.encode(pushes.tracking_stopped("RR1", 3011)))
    assert push.event == st.EVENT_STOPPED and push.status is None
