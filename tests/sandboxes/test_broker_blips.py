"""Issue 13: a Celery worker survives its broker going away and coming back, with reconcile work
in flight, and the projects converge afterwards (the rows, not the messages, hold the work)."""

import pytest

from fullstackagent.status import ProjectStatus
from fullstackagent.testing.faults import PrivateRedis
from fullstackagent.testing.processes import wait_for
from projects import services
from projects.models import Project


def _statuses(projects):
    return sorted(Project.objects.filter(pk__in=[p.pk for p in projects]).values_list("status", flat=True))


def test_the_worker_survives_redis_restarts_with_tasks_in_flight(start_celery_worker, user, tmp_path):
    redis = PrivateRedis(tmp_path / "redis")
    try:
        # Per-task log lines on: they show the work in flight.
        worker = start_celery_worker(
            name="blips",
            environment={"REDIS_URL": redis.url, "RECONCILE_DRIFT_CHECK_SECONDS": 1, "WORKER_TASK_LOG_LEVEL": "INFO"},
        )
        projects = [services.do_create_project(user, name=f"Blip {letter}") for letter in "abcd"]
        for round_number in range(3):
            # Work in flight: reconcile tasks received, some of them rechecking soon.
            log_size = len(worker.output())
            wait_for(lambda: "reconcile_" in worker.output()[log_size:], message="reconcile tasks in flight")
            redis.stop()
            wait_for(
                lambda: "Connection to broker lost" in worker.output()[log_size:] or worker.process.poll() is not None,
                message="the worker to notice",
            )
            if round_number:
                # Desired states change while the broker is down (the publish fails, the scan has it).
                services.do_stop_project(Project.objects.get(pk=projects[round_number].pk))
            redis.start()
            wait_for(
                lambda: worker.output().count("] Connected to ") > round_number + 1 or worker.process.poll() is not None,
                message="the worker to reconnect",
            )
            assert worker.process.poll() is None, worker.output()[-4000:]
        wait_for(
            lambda: _statuses(projects) == ["RUNNING"] * 2 + ["STOPPED"] * 2,
            timeout=40,
            message="every project to converge",
        )
        assert worker.process.poll() is None
        assert "Unrecoverable error" not in worker.output()
    finally:
        redis.stop()


@pytest.mark.parametrize("transport, survives", [("redis", False), ("fullstackagent.broker:Transport", True)])
def test_closing_a_lost_connection_with_unacknowledged_messages(tmp_path, transport, survives):
    """The state kombu is in when Celery closes a connection Redis dropped (see fullstackagent.broker):
    the transport already detached, the channel still open with a delivered, unacknowledged message.
    kombu's own transport raises AttributeError there (which ends the worker); ours a connection
    error, which Celery's cleanup ignores."""
    from kombu import Connection, Exchange, Queue
    from kombu.common import ignore_errors

    redis = PrivateRedis(tmp_path / "redis")
    connection = Connection(redis.url, transport=transport)
    try:
        channel = connection.default_channel
        queue = Queue("blips", Exchange("blips"), "blips")
        connection.Producer().publish({"step": 1}, exchange=queue.exchange, routing_key="blips", declare=[queue])
        assert queue(channel).get(no_ack=False) is not None
        assert len(channel.qos._delivered) == 1
        redis.stop()
        channel._disconnect_pools()
        connection.transport.client = None  # what Connection.collect() leaves behind

        if survives:
            ignore_errors(connection, channel.close)
        else:
            with pytest.raises(AttributeError, match="hostname"):
                ignore_errors(connection, channel.close)
    finally:
        redis.stop()
