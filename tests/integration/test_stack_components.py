"""The processes the runner starts: loopback-only listeners, Redis without persistence."""

from __future__ import annotations

import os
from pathlib import Path

import redis

LISTEN = "0A"
LOOPBACK_V4 = "0100007F"


def _listening_addresses(pid: int) -> set[str]:
    """The local addresses (hex, as in /proc/net/tcp*) of every TCP socket ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                addresses.add(fields[1].rsplit(":", 1)[0])
    return addresses


def test_every_component_listens_on_loopback_only(stack):
    """No process of the stack listens on anything but 127.0.0.1."""
    for name, component in stack.runner.status()["components"].items():
        addresses = _listening_addresses(component["pid"])
        assert addresses == {LOOPBACK_V4}, f"{name} listens on {addresses}"


def test_redis_keeps_nothing_on_disk(stack):
    """Redis runs with RDB snapshots and the append-only file both off."""
    client = redis.Redis.from_url(stack.redis_url)
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    client.close()
