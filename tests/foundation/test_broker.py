"""fullstackagent.broker's channel: one redis-py client per connection pool (not one per command, as
kombu makes them), with messages going through, and a new one with a new pool after Redis restarts."""

import redis
from kombu import Connection

from fullstackagent.broker import Transport
from fullstackagent.testing.faults import PrivateRedis
from fullstackagent.testing.processes import wait_for


def test_a_channel_sends_every_command_through_one_client_per_pool(tmp_path, monkeypatch):
    made = []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        made.append(kwargs.get("connection_pool"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    server = PrivateRedis(tmp_path / "redis")
    try:
        with Connection(server.url, transport=Transport) as connection:
            queue = connection.SimpleQueue("fsa-broker-test")
            for number in range(5):
                queue.put({"number": number})
            assert queue.qsize() == 5
            channel = queue.channel
            client = channel._create_client()
            # Five publishes and a size: one client, on the channel's pool.
            sync_clients = [pool for pool in made if pool is channel.pool]
            assert len(sync_clients) == 1
            assert [queue.get(timeout=5).payload["number"] for _ in range(5)] == [0, 1, 2, 3, 4]

            # Redis goes away and comes back: kombu drops its pools when it finds the connection
            # lost, and the channel's client goes with them.
            server.stop()
            server.start()
            wait_for(lambda: _reachable(server.url), message="Redis to be back")
            old_pool = channel.pool
            channel._disconnect_pools()
            renewed = channel._create_client()
            assert renewed is not client and renewed.connection_pool is channel.pool is not old_pool
            assert renewed.ping() and channel._create_client() is renewed
            queue.close()
    finally:
        server.stop()


def _reachable(url) -> bool:
    try:
        return redis.Redis.from_url(url).ping()
    except redis.ConnectionError:
        return False
