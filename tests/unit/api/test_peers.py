"""Peer URLs from the group's metadata are used only inside CXSTREAM_PEER_NETWORKS."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from cxstream.api import peers
from cxstream.config.settings import PEER_NETWORKS, Settings

NETWORKS = Settings.from_env({}).peer_networks

DNS = {
    "worker-1": ["10.0.3.7"],
    "cxstream-0.cxstream-peers": ["172.17.0.4", "fd00::4"],
    "localhost": ["127.0.0.1", "::1"],
    "mapped": ["::ffff:192.168.1.9"],
    "evil.example.com": ["203.0.113.5"],
    "split": ["10.0.0.1", "8.8.8.8"],  # one outside address is enough to refuse
    "nat64": ["64:ff9b::a00:1"],  # 10.0.0.1 through NAT64: still a public route
}


async def fake_resolve(host: str, port: int) -> list[str]:
    if host in DNS:
        return DNS[host]
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        raise OSError("does not resolve") from None


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    peers._cache.clear()  # noqa: SLF001
    yield
    peers._cache.clear()  # noqa: SLF001


@pytest.mark.parametrize("url", [
    "http://worker-1:6066", "http://cxstream-0.cxstream-peers:6066/", "https://localhost:6066",
    "http://mapped:6066", "http://127.0.0.1:6066", "http://[::1]:6066", "http://169.254.1.1:1",
])
async def test_peers_inside_the_networks_are_used(url: str) -> None:
    assert await peers.peer_refusal(url, NETWORKS, resolve=fake_resolve) is None


@pytest.mark.parametrize(("url", "why"), [
    ("http://evil.example.com:6066", "outside CXSTREAM_PEER_NETWORKS"),
    ("http://split:6066", "outside CXSTREAM_PEER_NETWORKS"),
    ("http://nat64:6066", "outside CXSTREAM_PEER_NETWORKS"),
    ("http://8.8.8.8:6066", "outside CXSTREAM_PEER_NETWORKS"),
    ("http://nowhere:6066", "does not resolve"),
    ("ftp://worker-1:6066", "not a plain"),
    ("http://user:pw@worker-1:6066", "not a plain"),
    ("http://worker-1:6066/steal", "not a plain"),
    ("http://worker-1:6066?x=1", "not a plain"),
    ("http://worker-1:99999", "not a URL"),
    ("worker-1:6066", "not a plain"),
])
async def test_other_peers_are_refused_with_a_reason(url: str, why: str) -> None:
    refusal = await peers.peer_refusal(url, NETWORKS, resolve=fake_resolve)
    assert refusal is not None and why in refusal


async def test_the_networks_are_configurable() -> None:
    only_docker = Settings.from_env({"CXSTREAM_PEER_NETWORKS": "172.17.0.0/16"}).peer_networks
    assert await peers.peer_refusal("http://172.17.0.9:1", only_docker, resolve=fake_resolve) is None
    assert await peers.peer_refusal("http://10.0.0.9:1", only_docker, resolve=fake_resolve)
    assert len(NETWORKS) == len(PEER_NETWORKS.split(","))


async def test_a_verdict_is_cached_for_a_while_then_asked_again() -> None:
    asked: list[str] = []
    clock = [0.0]

    async def counting(host: str, port: int) -> list[str]:
        asked.append(host)
        return await fake_resolve(host, port)

    for at in (0.0, 1.0, peers.CACHE_S - 0.1):
        clock[0] = at
        assert await peers.peer_refusal("http://worker-1:6066", NETWORKS, resolve=counting,
                                        now=lambda: clock[0]) is None
    assert asked == ["worker-1"]
    DNS["worker-1"] = ["198.51.100.1"]  # the name now points outside
    try:
        clock[0] = peers.CACHE_S + 0.1
        assert await peers.peer_refusal("http://worker-1:6066", NETWORKS, resolve=counting,
                                        now=lambda: clock[0])
        assert asked == ["worker-1", "worker-1"]
    finally:
        DNS["worker-1"] = ["10.0.3.7"]


async def test_the_cache_stays_bounded() -> None:
    for i in range(peers.CACHE_MAX * 2 + 3):
        await peers.peer_refusal(f"http://10.0.0.{i % 250}:{1000 + i}", NETWORKS,
                                 resolve=fake_resolve)
        assert len(peers._cache) <= peers.CACHE_MAX  # noqa: SLF001


def test_a_bad_network_setting_says_what_to_write() -> None:
    from cxstream.config.settings import SettingsError

    with pytest.raises(SettingsError, match="CIDR"):
        Settings.from_env({"CXSTREAM_PEER_NETWORKS": "10.0.0.0/8,corp-lan"})
    with pytest.raises(SettingsError, match="at least one network"):
        Settings.from_env({"CXSTREAM_PEER_NETWORKS": " , "})
