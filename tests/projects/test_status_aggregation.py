import pytest

from fullstackagent.status import aggregate_status

R, S, C, U, E = "RUNNING", "STARTING", "CREATING", "UPDATING", "ERROR"
STOPPED, STOPPING, T, TING = "STOPPED", "STOPPING", "TERMINATED", "TERMINATING"


@pytest.mark.parametrize(
    "sandbox, database, expected",
    [
        (R, R, "RUNNING"),
        (STOPPED, STOPPED, "STOPPED"),
        (T, T, "TERMINATED"),
        (C, C, "CREATING"),
        (E, R, "ERROR"),
        (C, E, "ERROR"),  # ERROR outranks CREATING
        (C, R, "CREATING"),
        (U, R, "UPDATING"),
        (U, C, "CREATING"),  # CREATING outranks UPDATING
        (R, S, "STARTING"),
        (S, S, "STARTING"),
        (STOPPED, STOPPING, "STOPPING"),
        (TING, T, "TERMINATING"),
        (R, STOPPED, "PARTIAL"),
        (S, STOPPING, "PARTIAL"),
        (R, T, "PARTIAL"),
    ],
)
def test_project_status_from_resources(sandbox, database, expected):
    assert aggregate_status([sandbox, database]) == expected


def test_project_without_resources_is_terminated():
    assert aggregate_status([]) == "TERMINATED"
