"""Memory given back to the operating system after a burst of connections ends.

A daphne that relayed 400 terminals kept its peak resident size after they all closed: the freed
buffers stay in glibc's heap, which returns memory to the system only from the heap's top, and
the freed chunks sit between live ones. ``malloc_trim(0)`` releases every free page of the heap.
The relay calls ``note_closed()`` as each terminal ends; once ``BURST`` of them have ended since the
last release, one release runs ``QUIET_SECONDS`` after the last of them (a storm of closes costs one
call), on a thread, as it walks the whole heap. Where the C library has no malloc_trim (musl), it
does nothing.
"""

import asyncio
import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

# Ends since the last release that make one worth its walk of the heap; a single terminal's
# buffers (~50 KiB) are not.
BURST = 50
QUIET_SECONDS = 2.0


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_trim = _malloc_trim()


def release() -> bool:
    """Gives the heap's free pages back to the system now; True when the C library did any."""
    if _trim is None:
        return False
    return bool(_trim(0))


class Releaser:
    """Counts ends and schedules one release after a burst of them, on the running event loop."""

    def __init__(self, burst: int = BURST, quiet_seconds: float = QUIET_SECONDS):
        self.burst = burst
        self.quiet_seconds = quiet_seconds
        self.ended = 0
        self.releases = 0
        self._timer: asyncio.TimerHandle | None = None

    def note_closed(self) -> None:
        self.ended += 1
        if self.ended < self.burst:
            return
        if self._timer is not None:
            self._timer.cancel()  # still closing: wait for the storm to pass
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.quiet_seconds, lambda: loop.create_task(self._release()))

    async def _release(self) -> None:
        self._timer = None
        self.ended = 0
        self.releases += 1
        try:
            await asyncio.get_running_loop().run_in_executor(None, release)
        except Exception:  # noqa: BLE001 - memory not returned is no reason to fail a connection
            logger.exception("malloc_trim failed")


# The terminal relay's, one per process.
terminals = Releaser()
