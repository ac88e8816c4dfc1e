"""Datetimes from MongoDB to ``google.protobuf.Timestamp`` and back, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def aware(value: datetime) -> datetime:
    """``value`` with UTC attached when the driver handed it back naive."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_timestamp(value: datetime | None) -> Timestamp | None:
    """The protobuf Timestamp of ``value`` (None stays None, so a message
    field is left unset)."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(aware(value))
    return stamp
