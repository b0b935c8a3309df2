"""Scores per survey program over HTTP: `GET /scores/{segment}?program=`, `GET /scores`,
`GET /programs` and `cxstream scores --program`, on the worker's real web app and a real
registry file (`CXSTREAM_SURVEYS`), its state table holding bucket entries written by hand
the way the data model stores answers.

The scatter-gather is the real one (`queries.gather`): the worker reads partitions 0 and 1
itself and asks the "peer" owning 2 and 3 over HTTP at `/_cx/partials`, which is the same
test server. Only Faust's view of the group (who owns which partition) is set by the test;
no broker is needed. Expected values are counted directly from the answers."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from faust.types import TP

from cxstream.api import routes
from cxstream.app import create_app
from cxstream.cli import main
from cxstream.config import surveys
from cxstream.config.settings import Settings
from cxstream.core import keys
from cxstream.core.programs import BUILTINS, Program, Registry
from cxstream.core.segments import program_key
from cxstream.core.timefmt import format_rfc3339
from cxstream.core.windows import DAY

from .localserver import serve

TOKEN = "programs-token"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
AS_OF = 20_757 * DAY  # a UTC midnight: the day before is one day bucket of the 7d window
SURVEYS = """
[programs.rnps]
metric = "nps"
target = 50

[programs.tnps]
metric = "nps"

[programs.csat-10]
metric = "csat"
scale = [1, 10]
satisfied = [8, 10]
target = 80

[programs.ces-7]
metric = "ces"
scale = [1, 7]
target = 3

[programs.quiet]
metric = "csat"
target = 90
"""
SEGMENTS = ["plan:free", "plan:pro", "region:eu", "region:na"]
Answer = tuple[str, int, frozenset[str], int]  # program, score, segments, partition


def answers(seed: int = 11, n: int = 300) -> list[Answer]:
    """Answers of every program but `quiet`, built-ins included, over four partitions."""
    rng = random.Random(seed)
    scales = {"nps": (0, 10), "rnps": (0, 10), "tnps": (0, 10), "csat": (1, 5),
              "csat-10": (1, 10), "ces": (1, 5), "ces-7": (1, 7)}
    out = []
    for _ in range(n):
        program = rng.choice(sorted(scales))
        low, high = scales[program]
        segs = frozenset({"all", rng.choice(SEGMENTS[:2]), rng.choice(SEGMENTS[2:])})
        out.append((program, rng.randint(low, high), segs, rng.randrange(4)))
    return out


def store(table: Any, registry: Any, given: list[Answer]) -> None:
    """One day entry per partition, as the stream writes it: every answer under its
    segments' own keys, a non-built-in's also under its program keys."""
    entries: dict[int, dict[str, list[int]]] = {}
    for program, score, segs, partition in given:
        counts = entries.setdefault(partition, {})
        for segment in segs:
            for key in ([segment] if program in BUILTINS
                        else [segment, program_key(program, segment)]):
                cur = counts.setdefault(key, [0] * 8)
                for position, amount in registry[program].increment(score):
                    cur[position] += amount
    for partition, counts in entries.items():
        # Into the table's store, as the worker's changelog writer puts them.
        table.data[keys.bucket_key(partition, DAY, AS_OF - DAY)] = {"o": 0, "s": counts}


def expected(given: list[Answer], program: Program, segment: str) -> dict[str, Any]:
    """The program's metric object, counted from the answers."""
    scores = [s for p, s, segs, _ in given if p == program.id and segment in segs]
    n = len(scores)
    if program.metric == "nps":
        pro, det = sum(s >= 9 for s in scores), sum(s <= 6 for s in scores)
        return {"responses": n, "promoters": pro, "detractors": det,
                "score": 100 * (pro - det) / n if n else None}
    if program.metric == "csat":
        low, high = program.satisfied or (0, 0)
        sat = sum(low <= s <= high for s in scores)
        return {"responses": n, "satisfied": sat, "score": 100 * sat / n if n else None}
    low, high = program.high_effort or (0, 0)
    return {"responses": n, "mean": sum(scores) / n if n else None,
            "high_effort_share": sum(low <= s <= high for s in scores) / n if n else None}


def same(got: dict[str, Any], want: dict[str, Any]) -> None:
    for name, value in want.items():
        if isinstance(value, float):
            assert got[name] is not None and math.isclose(got[name], value), (name, got, want)
        else:
            assert got[name] == value, (name, got, want)


class World:
    def __init__(self, client: TestClient, app: Any, registry: Registry,
                 given: list[Answer]) -> None:
        self.client, self.app, self.registry, self.given = client, app, registry, given
        self.table = app.tables["state"]
        self.asked: list[str | None] = []  # the `segments` of each peer request

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        resp = await self.client.get(path, headers=GOOD,
                                     params={"as_of": format_rfc3339(AS_OF), **params})
        return resp.status, await resp.json()


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    path = tmp_path / "surveys.toml"
    path.write_text(SURVEYS)
    settings = Settings.from_env({"CXSTREAM_DATA_DIR": str(tmp_path),
                                  "CXSTREAM_SURVEYS": str(path),
                                  "CXSTREAM_API_TOKEN": TOKEN})
    app = create_app(settings)
    client = TestClient(TestServer(app.web.web_app))
    await client.start_server()
    registry = surveys.registry(settings.surveys, settings.max_programs)
    given = answers()
    table = app.tables["state"]  # what the worker's processor reads
    store(table, registry, given)
    # Faust's view of the group: this worker owns 0 and 1, the peer (this same server, over
    # HTTP) 2 and 3; the peer endpoint answers for partitions assigned to it.
    me = str(app.conf.canonical_url).rstrip("/")
    peer = str(client.make_url("")).rstrip("/")
    topic = table.changelog_topic.get_topic_name()
    monkeypatch.setattr(app.assignor, "table_metadata",
                        lambda t: {me: {topic: [0, 1]}, peer: {topic: [2, 3]}} if t == topic
                        else {})
    monkeypatch.setattr(app.assignor, "assigned_actives",
                        lambda: {TP(f"{settings.topic_prefix}surveys", p) for p in range(4)})
    w = World(client, app, registry, given)
    real_local = routes.local_partial

    def spy(proc: Any, parts: Any, segments: list[str] | None, start: int, end: int) -> Any:
        if sorted(parts) == [2, 3]:
            w.asked.append(None if segments is None else "\n".join(segments))
        return real_local(proc, parts, segments, start, end)

    monkeypatch.setattr(routes, "local_partial", spy)
    yield w
    await client.close()


# -- GET /programs ---------------------------------------------------------------------------
async def test_programs_lists_the_registry(world: World) -> None:
    status, body = await world.get("/programs")
    assert status == 200
    by_id = {p["id"]: p for p in body["programs"]}
    assert list(by_id) == sorted(by_id) == ["ces", "ces-7", "csat", "csat-10", "nps", "quiet",
                                            "rnps", "tnps"]
    assert by_id["csat-10"] == {"id": "csat-10", "metric": "csat", "scale": [1, 10],
                                "satisfied": [8, 10], "high_effort": None, "target": 80.0,
                                "turns": False}
    assert by_id["ces-7"]["high_effort"] == [6, 7] and by_id["ces-7"]["target"] == 3.0
    assert by_id["rnps"]["turns"] is True and by_id["nps"]["target"] is None
    resp = await world.client.get("/programs")  # the token is needed, as for /scores
    assert resp.status == 401


# -- GET /scores/{segment}?program= ------------------------------------------------------------
async def test_each_programs_scores_equal_its_own_answers_in_every_segment(world: World) -> None:
    checked = 0
    for segment in ["all", *SEGMENTS]:
        for program in world.registry:
            status, body = await world.get(f"/scores/{segment}", program=program.id)
            assert status == 200, body
            want = expected(world.given, program, segment)
            assert set(body) == {"segment", "window", "as_of", "program", "scale", "target",
                                 "meets_target", program.metric}
            assert body["program"] == program.id and body["scale"] == list(program.scale)
            assert body["target"] == program.target and body["segment"] == segment
            same(body[program.metric], want)
            score = want.get("mean", want.get("score"))
            if program.target is None or score is None:
                assert body["meets_target"] is None
            elif program.metric == "ces":
                assert body["meets_target"] == (score <= program.target)
            else:
                assert body["meets_target"] == (score >= program.target)
            checked += want["responses"]
    assert checked == 3 * 300  # every answer, in each of its three segments
    # The peer was asked for the segment, and answered its program keys with it: without
    # them the non-built-ins would read zero and the built-ins too high.
    assert "plan:pro" in world.asked


async def test_a_program_without_answers_in_a_segment_reads_zero(world: World) -> None:
    status, body = await world.get("/scores/plan:pro", program="quiet")
    assert status == 200
    assert body["csat"]["responses"] == 0 and body["csat"]["score"] is None
    assert body["meets_target"] is None and body["target"] == 90.0


@pytest.mark.parametrize("name, shown", [("nope", "'nope'"), ("NO/pe:x", "of that id"),
                                         ("", "of that id")])
async def test_an_unknown_program_is_404_naming_how_to_list_them(
        world: World, name: str, shown: str) -> None:
    for path in ("/scores/plan:pro", "/scores"):
        status, body = await world.get(path, program=name)
        assert status == 404 and body["error"] == "unknown_program"
        assert "GET /programs" in body["message"] and shown in body["message"]
    assert world.asked == []  # refused before asking anyone


async def test_an_unknown_segment_stays_404_with_a_program(world: World) -> None:
    status, body = await world.get("/scores/plan:none", program="rnps")
    assert status == 404 and body["error"] == "unknown_segment"


# -- the metric-level view ---------------------------------------------------------------------
async def test_without_a_program_the_sums_stay_and_name_their_programs(world: World) -> None:
    for segment in ["all", *SEGMENTS]:
        status, body = await world.get(f"/scores/{segment}")
        assert status == 200
        inside = [(p, s) for p, s, segs, _ in world.given if segment in segs]
        for metric in ("nps", "csat", "ces"):
            mine = [(p, s) for p, s in inside if world.registry[p].metric == metric]
            assert body[metric]["responses"] == len(mine)
            assert body[metric]["programs"] == sorted({p for p, _ in mine})
        nps = [s for p, s in inside if world.registry[p].metric == "nps"]
        assert body["nps"]["promoters"] == sum(s >= 9 for s in nps)
        sat = sum(world.registry[p].is_satisfied(s) for p, s in inside
                  if world.registry[p].metric == "csat")
        assert body["csat"]["satisfied"] == sat  # each answer with its own program's range
        ces = [(p, s) for p, s in inside if world.registry[p].metric == "ces"]
        high = sum(world.registry[p].is_high_effort(s) for p, s in ces)
        assert math.isclose(body["ces"]["high_effort_share"], high / len(ces))
        # ces (1–5) and ces-7 (1–7) both answered: no mean, and why
        assert body["ces"]["mean"] is None
        assert "different scales" in body["ces"]["mean_withheld"]
        assert body["csat"]["low_sample"] == (len(inside) and body["csat"]["responses"] < 30)


async def test_all_segments_leave_program_keys_out(world: World) -> None:
    status, body = await world.get("/scores")
    assert status == 200 and "program" not in body
    assert [s["segment"] for s in body["segments"]] == ["all", *SEGMENTS]
    assert all("programs" in s["nps"] for s in body["segments"])
    status, body = await world.get("/scores", program="csat-10")
    assert status == 200 and body["program"] == "csat-10"
    assert [s["segment"] for s in body["segments"]] == ["all", *SEGMENTS]
    for doc in body["segments"]:
        assert "nps" not in doc and doc["program"] == "csat-10"
        same(doc["csat"], expected(world.given, world.registry["csat-10"], doc["segment"]))
    assert None in world.asked  # the peer was asked for every key


async def test_the_ces_mean_is_given_where_one_ces_scale_answered(world: World) -> None:
    table = world.table
    for key in [k for k in table.keys() if k.startswith("b|")]:
        del table.data[key]
    world.given[:] = [("ces-7", 7, frozenset({"all"}), 0), ("ces-7", 2, frozenset({"all"}), 3),
                      ("rnps", 10, frozenset({"all"}), 2)]
    store(table, world.registry, world.given)
    status, body = await world.get("/scores/all")
    assert status == 200
    assert body["ces"]["mean"] == 4.5 and body["ces"]["mean_withheld"] is None
    assert body["ces"]["programs"] == ["ces-7"] and body["nps"]["programs"] == ["rnps"]
    status, body = await world.get("/scores/all", program="ces-7")
    assert body["ces"]["mean"] == 4.5 and body["meets_target"] is False


# -- cxstream scores --program ---------------------------------------------------------------
def recorded(bodies: dict[str, Any], seen: list[dict[str, str]]) -> tuple[str, Any]:
    """A local server answering `bodies[path]` (recorded from the real app), noting each
    request's query in `seen`; returns its URL and the function that stops it."""

    async def answer(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response(bodies[request.path])

    return serve({path: answer for path in bodies})


async def test_the_cli_prints_one_programs_table(world: World) -> None:
    _, one = await world.get("/scores/plan:pro", program="rnps")
    _, every = await world.get("/scores", program="rnps")
    _, level = await world.get("/scores")
    seen: list[dict[str, str]] = []
    url, stop = recorded({"/scores/plan:pro": one, "/scores": every}, seen)
    try:
        runner = CliRunner()
        out = await asyncio.to_thread(runner.invoke, main, [
            "scores", "--url", url, "--segment", "plan:pro", "--program", "rnps"])
        assert out.exit_code == 0, out.output
        assert seen[-1]["program"] == "rnps"
        lines = out.output.splitlines()
        assert lines[0] == "program rnps: nps on 0–10, target 50"
        row = next(line for line in lines if line.startswith("plan:pro"))
        assert f"{one['nps']['score']:.1f}" in row and str(one["nps"]["responses"]) in row
        verdict = "below target 50: plan:pro" if one["meets_target"] is False \
            else "no segment below target 50"
        assert lines[-1] == verdict
        out = await asyncio.to_thread(runner.invoke, main,
                                      ["scores", "--url", url, "--program", "rnps"])
        assert out.exit_code == 0, out.output
        assert all(any(line.startswith(s) for line in out.output.splitlines())
                   for s in ["all", *SEGMENTS])
        missed = [d["segment"] for d in every["segments"] if d["meets_target"] is False]
        assert out.output.splitlines()[-1] == (
            f"below target 50: {', '.join(missed)}" if missed else "no segment below target 50")
    finally:
        stop()
    url, stop = recorded({"/scores": level}, seen)
    try:
        out = await asyncio.to_thread(CliRunner().invoke, main, ["scores", "--url", url])
        assert out.exit_code == 0, out.output
        assert "program" not in seen[-1]
        assert out.output.splitlines()[-1].startswith("CES mean -: CES programs of different")
    finally:
        stop()
