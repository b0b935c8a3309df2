"""The recovery watch: a changelog partition behind its end that receives nothing for
`STALL_S` is read again from the next offset the recovery needs, once per stall; one that
progresses, is complete, or a recovery that is over or interrupted by a rebalance is left alone."""

from __future__ import annotations

import logging
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import IllegalStateError
from faust.types import TP

from cxstream import metrics
from cxstream.worker.recovery_watch import STALL_S, Stalls, next_needed, restart_stalled

CL = "cx.cxstream-state-changelog"
A, B = TP(CL, 0), TP(CL, 1)


def test_a_partition_is_stalled_after_stall_s_without_progress_and_named_once_per_stall() -> None:
    stalls = Stalls(stall_s=10)
    assert stalls.check(0, {A: (-1, 99)}) == []
    assert stalls.check(9.9, {A: (-1, 99)}) == []
    assert stalls.check(10, {A: (-1, 99)}) == [A]
    assert stalls.check(15, {A: (-1, 99)}) == []  # its clock started again
    assert stalls.check(20, {A: (-1, 99)}) == [A]


def test_progress_or_completion_is_not_a_stall() -> None:
    stalls = Stalls(stall_s=10)
    for t, have in enumerate(range(0, 100, 10)):
        assert stalls.check(t * 9, {A: (have, 99), B: (99, 99)}) == []
    assert stalls.check(1000, {B: (99, 99)}) == []  # A no longer under recovery: forgotten
    assert stalls.check(1001, {A: (90, 99)}) == []  # ... so its clock starts afresh
    assert stalls.check(1011, {A: (90, 99)}) == [A]


def test_each_partition_has_its_own_clock() -> None:
    stalls = Stalls(stall_s=10)
    stalls.check(0, {A: (5, 9), B: (5, 9)})
    assert stalls.check(6, {A: (5, 9), B: (6, 9)}) == []
    assert stalls.check(10, {A: (5, 9), B: (6, 9)}) == [A]
    assert stalls.check(16, {A: (5, 9), B: (6, 9)}) == [B]


def test_the_next_offset_needed_follows_the_last_applied() -> None:
    recovery = SimpleNamespace(active_offsets=Counter({A: 41, B: -1}))
    assert (next_needed(recovery, A), next_needed(recovery, B), next_needed(recovery, TP(CL, 2))) \
        == (42, 0, 0)


class FakeConsumer:
    def __init__(self, fail: bool = False) -> None:
        self.flow_active, self.fail = True, fail
        self.resumed: list[set[TP]] = []
        self.seeks: list[dict[TP, int]] = []

    def resume_partitions(self, tps: set[TP]) -> None:
        self.resumed.append(set(tps))

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        if self.fail:
            raise IllegalStateError("No current assignment for partition")
        self.seeks.append(dict(offsets))


def fake_app(applied: dict[TP, int], ends: dict[TP, int], consumer: FakeConsumer) -> Any:
    recovery = SimpleNamespace(in_recovery=True, active_tps=set(ends),
                               active_offsets=Counter(applied), active_highwaters=Counter(ends))
    return SimpleNamespace(tables=SimpleNamespace(recovery=recovery), consumer=consumer)


async def test_a_stalled_partition_is_resumed_and_read_again_logged_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    consumer = FakeConsumer()
    app = fake_app({A: 3999, B: 200}, {A: 5029, B: 300}, consumer)
    stalls = Stalls()
    before = metrics.RECOVERY_STALLS._value.get()  # noqa: SLF001
    assert await restart_stalled(app, stalls, now=0) == []
    app.tables.recovery.active_offsets[B] = 250  # B progresses, A does not
    assert await restart_stalled(app, stalls, now=STALL_S) == [A]
    assert consumer.resumed == [{A}] and consumer.seeks == [{A: 4000}]
    assert metrics.RECOVERY_STALLS._value.get() == before + 1  # noqa: SLF001
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "reading it again from offset 4000" in warning[0], warning
    assert f"{CL}:0" in warning[0] and "of 5030" in warning[0]


async def test_nothing_is_done_outside_a_recovery_or_while_a_rebalance_stops_the_flow() -> None:
    consumer = FakeConsumer()
    app = fake_app({A: -1}, {A: 99}, consumer)
    stalls = Stalls()
    await restart_stalled(app, stalls, now=0)
    consumer.flow_active = False  # a rebalance: its recovery seeks every partition itself
    assert await restart_stalled(app, stalls, now=STALL_S) == []
    consumer.flow_active = True
    assert await restart_stalled(app, stalls, now=STALL_S + 1) == []  # the clock started again
    app.tables.recovery.in_recovery = False
    assert await restart_stalled(app, stalls, now=10 * STALL_S) == []
    assert consumer.seeks == []


async def test_a_partition_no_longer_assigned_is_left_to_the_next_recovery() -> None:
    consumer = FakeConsumer(fail=True)
    app = fake_app({A: -1}, {A: 99}, consumer)
    stalls = Stalls()
    await restart_stalled(app, stalls, now=0)
    assert await restart_stalled(app, stalls, now=STALL_S) == [A]  # no exception escapes
