"""The scores API with a token (CXSTREAM_API_TOKEN_FILE): two workers share the partitions,
so every answer needs the peer's `/_cx/partials`, which checks the token too. Without the
token (or with a wrong one) the API answers 401 JSON; health and metrics stay open; the
`cxstream scores` command sends the token; a worker with a different token is refused by its
peer and the query fails with a clear 502, never a wrong (partial) answer."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .harness import Worker, split_between, wait_drained, wait_for
from .test_scores import HORIZON, generate, oracle_events, produce_cli
from ..unit.core import oracle
from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import DAY, MINUTE

TOKEN = "integration-token-7f3a"


async def get(w: Worker, path: str, token: str | None, **params: str) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        async with s.get(f"{w.url}{path}", params=params, headers=headers) as r:
            body = await r.read()
            ctype = r.headers.get("content-type", "")
            return r.status, orjson.loads(body) if "json" in ctype else body.decode(), r.headers


async def test_scatter_gather_with_a_token(worker_factory: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")
    env = {"CXSTREAM_API_TOKEN_FILE": str(token_file)}
    a, b = worker_factory(name="a", extra_env=env), worker_factory(name="b", extra_env=env)
    a.start()
    b.start()
    await asyncio.gather(a.wait_ready(), b.wait_ready())  # /readyz needs no token by default

    await wait_for(lambda: split_between(a, b), 120, "the group to settle on two members")
    path = tmp_path / "surveys.jsonl"
    generate(path, 400, seed=11)
    proc = produce_cli(a, path)
    await asyncio.to_thread(proc.communicate)
    await wait_drained(a.bootstrap, f"{a.prefix}cxstream", [f"{a.prefix}surveys"])

    events = await oracle_events(a)
    good = oracle.accepted(events, HORIZON)
    st = max(oracle.stream_times(events, HORIZON).values())
    t = format_rfc3339(st - st % MINUTE + MINUTE)
    t_ms = st - st % MINUTE + MINUTE

    # No token, a wrong token: 401 JSON with a Bearer challenge, from either worker.
    for w in (a, b):
        for token in (None, "wrong"):
            status, body, headers = await get(w, "/scores", token, window="7d", as_of=t)
            assert status == 401 and body["error"] == "unauthorized"
            assert headers["WWW-Authenticate"].startswith("Bearer")
        status, body, _ = await get(w, "/_cx/partials", None, partitions="0", start="0", end="1")
        assert status == 401
    # Health and metrics stay open by default.
    assert (await a.get("/healthz"))[0] == 200
    assert "cxstream_events_total" in (await get(a, "/metrics", None))[1]

    # The right token: both answer, each asking the other for its partitions.
    sa, body_a, _ = await get(a, "/scores", TOKEN, window="7d", as_of=t)
    sb, body_b, _ = await get(b, "/scores", TOKEN, window="7d", as_of=t)
    assert sa == sb == 200, (body_a, body_b)
    assert body_a == body_b
    rows = {r["segment"]: r for r in body_a["segments"]}
    oracle.assert_matches(rows["all"], oracle.scores(good, "all", t_ms - 7 * DAY, t_ms))
    status, bad, _ = await get(b, "/scores/plan:pro", TOKEN, window="9x")
    assert status == 400 and bad["error"] == "unknown_window"

    # The CLI sends the token from the same settings.
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cxstream", "scores", "--url", b.url, "--json",
                         "--window", "7d", "--as-of", t],
        env=b.env(), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert orjson.loads(out.stdout) == body_a


async def test_a_peer_with_another_token_is_refused(worker_factory: Any, tmp_path: Path) -> None:
    a = worker_factory(name="a", extra_env={"CXSTREAM_API_TOKEN": TOKEN})
    b = worker_factory(name="b", extra_env={"CXSTREAM_API_TOKEN": "another-token"})
    a.start()
    b.start()
    await asyncio.gather(a.wait_ready(), b.wait_ready())

    async def both_own_partitions() -> bool:
        (sa, ra), (sb, rb) = await a.get("/readyz"), await b.get("/readyz")
        return (sa == sb == 200 and ra["partitions"] and rb["partitions"]
                and sorted(ra["partitions"] + rb["partitions"]) == [0, 1, 2, 3])

    await wait_for(both_own_partitions, 120, "the group to settle on two members")
    status, body, _ = await get(a, "/scores", TOKEN, window="24h",
                                as_of=format_rfc3339(1_800_000_000_000 - 1_800_000_000_000 % MINUTE))
    assert status == 502 and body["error"] == "peer_error"
    assert "401" in body["message"] and "CXSTREAM_API_TOKEN" in body["message"]


async def test_workers_with_their_own_api_tokens_share_one_peer_token(
        worker_factory: Any) -> None:
    """The peer token, not the API token, opens a peer's `/_cx/partials`: two workers whose API
    tokens differ answer for the whole group once they share CXSTREAM_PEER_TOKEN, and the
    peer endpoint refuses their API tokens and any range no query asks."""
    a = worker_factory(name="a", extra_env={"CXSTREAM_API_TOKEN": TOKEN,
                                            "CXSTREAM_PEER_TOKEN": "peer-7f3a"})
    b = worker_factory(name="b", extra_env={"CXSTREAM_API_TOKEN": "another-token",
                                            "CXSTREAM_PEER_TOKEN": "peer-7f3a"})
    a.start()
    b.start()
    await asyncio.gather(a.wait_ready(), b.wait_ready())
    await wait_for(lambda: split_between(a, b), 120, "the group to settle on two members")
    as_of = format_rfc3339(1_800_000_000_000 - 1_800_000_000_000 % MINUTE)
    for w, token in ((a, TOKEN), (b, "another-token")):
        status, body, _ = await get(w, "/scores", token, window="24h", as_of=as_of)
        assert status == 200, body
    hour = str(3_600_000)
    status, _, _ = await get(b, "/_cx/partials", TOKEN, partitions="0", start="0", end=hour)
    assert status == 401
    status, body, _ = await get(b, "/_cx/partials", "peer-7f3a", partitions="0",
                                start="0", end=str(10**6 * 86_400_000))
    assert status == 400 and body["error"] == "bad_request"
