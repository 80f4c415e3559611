"""Short rechecks of one resource (a process booting, a row handed back after a user's change),
published to the broker when they are due rather than parked there as countdown messages.

A countdown message waits in the worker unacknowledged until its time comes; when Redis goes away
the worker must restore every such message on a connection that is already gone, and kombu fails
at that (see CELERY_TASK_ACKS_LATE in settings). A timer in the worker process holds nothing in the
broker. If the worker dies first the timer dies with it, which is harmless: the step stored the
row's next_check_at, and the beat's scan queues the row then.
"""

import logging
import threading

logger = logging.getLogger(__name__)


def publish(task, args: tuple) -> None:
    """Queues the task now; a broker that is down is logged, not raised (the scan is the safety net)."""
    try:
        task.apply_async(args)
    except Exception:  # noqa: BLE001 - any broker failure: the row's next_check_at still holds the work
        logger.warning("queueing %s%s failed; the scan will queue it", task.name, args, exc_info=True)


def publish_later(task, args: tuple, delay: float) -> None:
    """Queues the task after ``delay`` seconds (at once for 0), from a timer thread of this process."""
    if delay <= 0:
        publish(task, args)
        return
    timer = threading.Timer(delay, publish, (task, args))
    timer.daemon = True  # a worker shutting down does not wait for its rechecks
    timer.start()
