"""fullstackagent.memory: a burst of closed terminals gives its memory back to the system, once."""

import asyncio
import subprocess
import sys

import pytest

from fullstackagent import memory
from fullstackagent.testing.processes import PROJECT_ROOT


def test_a_burst_of_closes_releases_once_after_the_storm(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "release", lambda: calls.append(1) or True)
    releaser = memory.Releaser(burst=3, quiet_seconds=0.1)

    async def storm():
        for _ in range(2):
            releaser.note_closed()
        await asyncio.sleep(0.3)
        assert calls == []  # fewer ends than a burst: nothing worth a walk of the heap
        for _ in range(5):
            releaser.note_closed()
            await asyncio.sleep(0.02)  # still closing: the release waits for the quiet
        assert calls == []
        await asyncio.sleep(0.3)

    asyncio.run(storm())

    assert calls == [1]
    assert releaser.releases == 1 and releaser.ended == 0


# Allocates ~200 MiB in 4 KiB buffers (glibc's heap, not mmap), frees all but the last (which pins
# the heap's top, so free() alone gives nothing back), then releases. Prints RSS in MiB at each step.
_FRAGMENTED_HEAP = """
import gc
from fullstackagent import memory

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

start = rss()
buffers = [bytearray(4096) for _ in range(50_000)]
peak = rss()
last = buffers[-1]
del buffers
gc.collect()
freed = rss()
released = memory.release()
print(start, peak, freed, rss(), released)
"""


@pytest.mark.skipif(memory._trim is None, reason="the C library has no malloc_trim (not glibc)")
def test_release_gives_freed_heap_memory_back_to_the_system():
    output = subprocess.run(
        [sys.executable, "-c", _FRAGMENTED_HEAP], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
    start, peak, freed, after, released = output.split()

    assert int(peak) - int(start) > 150  # the buffers were resident
    assert int(freed) - int(start) > 150  # freeing them alone gave (almost) nothing back
    assert released == "True"
    assert int(after) - int(start) < 50
