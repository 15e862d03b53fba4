"""The processes the runner starts: loopback-only listeners, Redis without persistence."""

from __future__ import annotations

import redis

from otel_llm.stack.run import listening_sockets, socket_inodes

LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def test_every_component_listens_on_loopback_only(stack):
    """No process of the stack listens on anything but 127.0.0.1."""
    for name, component in stack.runner.status()["components"].items():
        inodes = socket_inodes(component["pid"])
        addresses = {address for inode, (address, _) in listening_sockets().items() if inode in inodes}
        assert addresses == {LOOPBACK_V4}, f"{name} listens on {addresses}"


def test_redis_keeps_nothing_on_disk(stack):
    """Redis runs with RDB snapshots and the append-only file both off."""
    client = redis.Redis.from_url(stack.redis_url)
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    client.close()
