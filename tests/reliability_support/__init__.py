"""What the reliability tests (tests/test_reliability_*.py) share: real service processes on a
database of their own, signed pushes, and the figures they print and assert."""

from tests.reliability_support.checks import (
    Figures,
    applied_counts,
    event_figures,
    final_states,
    inbox_drained,
    inbox_states,
    resent_items,
    stoptrack_operations,
    stoptracks_settled,
    wrong_final_states,
)
from tests.reliability_support.processes import (
    QUICK_RATE,
    ROOT,
    Processes,
    free_port,
    fresh_database,
    plain,
    service_env,
    simulator,
    wait_until,
)
from tests.reliability_support.pushes import CARRIER, Plan, Poster, Push, plan_pushes

__all__ = [
    "CARRIER", "QUICK_RATE", "ROOT", "Figures", "Plan", "Poster", "Processes", "Push", "applied_counts",
    "event_figures", "final_states", "free_port", "fresh_database", "inbox_drained", "inbox_states",
    "plain", "plan_pushes", "resent_items", "service_env", "simulator", "stoptrack_operations",
    "stoptracks_settled", "wait_until", "wrong_final_states",
]  # fmt: skip
