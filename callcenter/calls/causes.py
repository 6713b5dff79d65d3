"""Q.850 hang-up causes seen on the hotline, as text for records and logs."""

from __future__ import annotations

CAUSES = {
    0: "Unknown",
    1: "Unallocated number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    27: "Destination out of order",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    127: "Interworking, unspecified",
}


def cause_text(code: int | None) -> str | None:
    """'16 Normal Clearing' style text, or None when Asterisk gave no cause."""
    if code is None:
        return None
    return f"{code} {CAUSES.get(code, 'Cause ' + str(code))}"
