"""The SDK's clock: wall time plus an offset that tests may advance.

Everything in the SDK that decides whether a credential is still good (the in-process L1, the
JWT-SVID file source, and the refreshing credential objects handed to boto3, google-auth and
azure-core) reads this clock. Advancing it makes every one of them see the credentials they hold
as that much older, which is how the tests force a refresh without waiting an hour:

    import hexr.clock
    hexr.clock.advance(3000)   # tests only
    hexr.clock.reset()
"""

from __future__ import annotations

import datetime
import threading
import time

_lock = threading.Lock()
_offset = 0.0


def now() -> float:
    """Seconds since the epoch, as the SDK sees them."""
    return time.time() + _offset


def utcnow() -> datetime.datetime:
    """now() as an aware UTC datetime."""
    return datetime.datetime.fromtimestamp(now(), tz=datetime.timezone.utc)


def advance(seconds: float) -> None:
    """Moves the SDK's clock forward (tests only)."""
    global _offset
    with _lock:
        _offset += float(seconds)


def reset() -> None:
    """Back to wall time."""
    global _offset
    with _lock:
        _offset = 0.0


def offset() -> float:
    return _offset
