"""Timestamps as stored in the ACKB: ISO-8601 UTC strings with microseconds and a `Z`.

Strings (not backend temporal types) so both backends and the interchange files agree byte for
byte, and so they sort lexicographically in time order.
"""

from __future__ import annotations

import datetime as dt
import re

TIMESTAMP_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def utc_now() -> str:
    """Now, in the stored format."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_timestamp(value: str) -> bool:
    """Whether `value` is in the stored format and a real date/time."""
    if not TIMESTAMP_PATTERN.match(value):
        return False
    try:
        dt.datetime.fromisoformat(value[:-1])  # checks the calendar (no 31 February); fast, in C
    except ValueError:
        return False
    return True
