"""The Redis transport Celery uses: kombu's, with one guard against a crash on broker loss.

When Redis goes away, Celery's consumer first collects the broken connection (which detaches
the transport from it: ``transport.client = None``) and then closes it. If the channel's first
close was cut short by the loss (it was polling), the second close restores the channel's
unacknowledged messages and asks for a new Redis pool from the detached transport:
``_connparams`` reads ``None.hostname``, and the AttributeError, not being a connection error,
escapes Celery's cleanup and ends the worker ("Unrecoverable error"). The guard turns that case
into the connection error it is, which the cleanup ignores; the messages stay in Redis's unacked
set, from which kombu restores them after its visibility timeout (and the reconcile rows do not
need them: the beat's scan re-queues every due row). Fewer such messages exist in the first place
because tasks are acked early and rechecks are not parked as countdowns (settings).

And one saving: kombu makes a new redis-py client for every command it sends outside its event loop
(a publish, a queue's size), and redis-py's constructor fills a table of some 170 reply callbacks
each time: a fifth of the CPU of queueing a task, 0.1 ms of every project create (bench/api.py).
The channel keeps one client on its connection pool instead (redis-py's clients are safe to share;
each command borrows a connection from the pool), and makes a new one when the pool is replaced.
"""

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    _client_of_pool = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        client = self._client_of_pool
        if client is None or client.connection_pool is not pool:
            client = self._client_of_pool = super()._create_client()
        return client

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection was closed after a connection loss")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


# CELERY_BROKER_TRANSPORT for redis:// and rediss:// URLs (sentinel keeps kombu's own).
TRANSPORT_PATH = "fullstackagent.broker:Transport"
