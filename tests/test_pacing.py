"""Pacing without sleeping: FrameClock and ClipPlayer driven by a fake clock."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from conftest import recording_sender

from bridge.mapping import load_mapping
from bridge.protocol import EndReason, Frame, StreamEnd, StreamStart
from bridge.runtime.clips import ClipPlayer
from bridge.runtime.clock import FrameClock
from bridge.runtime.subject import Output, SubjectStream
from emoface_core.testing.clocks import FakeClock

FPS = 60
PERIOD_S = 1 / FPS
TEN_MINUTES = 10 * 60 * FPS  # 36,000 frames


def _clock(**kwargs) -> tuple[FakeClock, FrameClock]:
    fake = FakeClock(**kwargs)
    return fake, FrameClock(FPS, clock=fake, sleep=fake.sleep)


def test_frames_are_released_exactly_at_anchor_plus_index_over_fps():
    fake, clock = _clock()
    anchor = clock.start()
    released = []
    for i in range(120):
        assert clock.wait(i) == 0.0
        released.append(fake.now_s)
    np.testing.assert_allclose(released, anchor + np.arange(120) / FPS, rtol=0, atol=1e-9)
    assert clock.stats.n_late == 0 and clock.stats.n_frames == 120


def test_ten_minutes_with_late_wakeups_and_work_do_not_drift_unlike_naive_sleeping():
    rng = random.Random(0)
    fake, clock = _clock(oversleep_s=lambda _: rng.uniform(0.0, 0.003))  # a busy scheduler
    anchor = clock.start()
    for i in range(TEN_MINUTES):
        clock.wait(i)
        fake.advance(0.001)  # mapping + encoding + sending
    final_error_s = fake.now_s - 0.001 - (anchor + (TEN_MINUTES - 1) / FPS)
    assert clock.stats.last_late_s < PERIOD_S and final_error_s < PERIOD_S
    assert clock.stats.max_late_s <= 0.003 + 1e-9
    # The loop this replaces: sleep one period after each frame. Its error accumulates.
    rng = random.Random(0)
    naive = FakeClock(oversleep_s=lambda _: rng.uniform(0.0, 0.003))
    start = naive()
    for _ in range(TEN_MINUTES):
        naive.advance(0.001)
        naive.sleep(PERIOD_S)
    naive_drift_s = naive() - (start + TEN_MINUTES / FPS)
    assert naive_drift_s > 60.0  # a minute behind after ten minutes


def test_late_frames_are_counted_and_hopeless_ones_skipped():
    fake, clock = _clock()
    clock.start()
    skipped = []
    for i in range(30):
        late = clock.wait(i)
        if clock.should_skip(late):
            skipped.append(i)
            continue
        if i == 10:
            fake.advance(0.09)  # one 90 ms hiccup
    assert skipped == [11, 12, 13]  # 73, 57 and 40 ms late: over two frames (33 ms)
    stats = clock.stats
    assert stats.n_late == 5  # 11..15 are over a quarter frame late
    assert stats.n_skipped == 3
    assert stats.max_late_s == pytest.approx(0.09 - PERIOD_S)
    assert clock.wait(30) == 0.0  # back on the grid: no drift after the hiccup


def test_audio_offset_shifts_deadlines_and_never_before_the_anchor():
    _, clock = _clock()
    anchor = clock.start(offset_s=0.1)
    assert clock.due_s(0) == pytest.approx(anchor + 0.1)
    anchor = clock.start(offset_s=-0.1)
    assert [clock.due_s(i) for i in range(7)] == [anchor] * 7  # already due: sent at once
    assert clock.due_s(7) == pytest.approx(anchor + 7 / FPS - 0.1)


def test_frame_clock_rejects_bad_use():
    with pytest.raises(ValueError, match="fps"):
        FrameClock(0)
    with pytest.raises(RuntimeError, match="start"):
        FrameClock(60).wait(0)


def _stream(sender, subject: str = "npc", **kwargs) -> SubjectStream:
    return SubjectStream(subject, [Output(sender, load_mapping("metahuman_faceboard"))], **kwargs)


def _clip(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 174)).astype(np.float32)


def test_looping_player_keeps_one_time_line_and_numbers_lines_and_frames():
    sender = recording_sender()
    fake, clock = _clock(oversleep_s=0.0005)
    clip = _clip(10)
    player = ClipPlayer([(_stream(sender), clip)], loops=3, frame_clock=clock)
    anchor_s = fake.now_s
    stats = player.run()
    frames = sender.of_type(Frame)
    assert [f.seq for f in frames] == list(range(30))
    assert [f.line_id for f in frames] == [1] * 10 + [2] * 10 + [3] * 10
    assert [f.t_s for f in frames[10:12]] == [0.0, 1 / 60]  # audio time restarts each pass
    assert [s.line_id for s in sender.of_type(StreamStart)] == [1, 2, 3]
    ends = sender.of_type(StreamEnd)
    assert [(e.line_id, e.n_frames_sent, e.reason) for e in ends] == [
        (i, 10, EndReason.FINISHED) for i in (1, 2, 3)
    ]
    # The last frame of the third pass was due 29 frames after the anchor: no drift across loops.
    assert fake.now_s == pytest.approx(anchor_s + 29 / 60 + 0.0005, abs=1e-9)
    assert (stats.n_frames, stats.n_lines, stats.n_skipped) == (30, 3, 0)
    mapping = load_mapping("metahuman_faceboard")
    np.testing.assert_array_equal(frames[13].values, mapping.apply_array(clip[3]))


def test_player_skips_hopelessly_late_frames_and_reports_them():
    sender = recording_sender()
    slow_once = iter([0.2])  # the first sleep oversleeps by 200 ms (12 frames)
    fake, clock = _clock(oversleep_s=lambda _: next(slow_once, 0.0))
    stats = ClipPlayer([(_stream(sender), _clip(40))], frame_clock=clock).run()
    sent_t = [round(f.t_s * 60) for f in sender.of_type(Frame)]
    assert stats.n_skipped == len(set(range(40)) - set(sent_t)) > 0
    assert stats.pacing.n_late >= stats.n_skipped
    assert sent_t == sorted(sent_t) and sent_t[-1] == 39


def test_player_without_realtime_never_sleeps_and_stop_ends_lines_as_shutdown():
    sender = recording_sender()
    fake, clock = _clock()
    ClipPlayer([(_stream(sender), _clip(20))], realtime=False, frame_clock=clock).run()
    assert fake.n_sleeps == 0 and len(sender.of_type(Frame)) == 20
    sender = recording_sender()
    stream = _stream(sender)
    player = ClipPlayer(
        [(stream, _clip(20))], frame_clock=_clock()[1], stop=lambda: stream.stats.n_frames >= 5
    )
    player.run()
    assert len(sender.of_type(Frame)) == 5
    assert sender.of_type(StreamEnd)[-1].reason == EndReason.SHUTDOWN


def test_several_subjects_share_one_clock_and_end_their_own_lines():
    sender = recording_sender()
    fake, clock = _clock()
    long, short = _stream(sender, "npc_a"), _stream(sender, "npc_b")
    ClipPlayer([(long, _clip(12, 1)), (short, _clip(5, 2))], frame_clock=clock).run()
    frames = sender.of_type(Frame)
    assert sum(f.subject == "npc_a" for f in frames) == 12
    assert sum(f.subject == "npc_b" for f in frames) == 5
    # Frame i of both subjects is released in the same slot, in clip order.
    assert [f.subject for f in frames[:4]] == ["npc_a", "npc_b", "npc_a", "npc_b"]
    end_b = next(i for i, m in enumerate(sender.messages) if isinstance(m, StreamEnd))
    assert sender.messages[end_b].subject == "npc_b"  # ended right after its last frame
    assert math.isclose(fake.now_s - clock.anchor_s, 11 / 60)


def test_audio_offset_delays_frames_but_not_the_announced_audio_start():
    sender = recording_sender()
    fake, clock = _clock()
    start_s = fake.now_s
    released = []
    stream = _stream(sender)
    original_push = stream.push

    def push(values, t_s=None):
        released.append(fake.now_s)
        return original_push(values, t_s)

    stream.push = push
    ClipPlayer([(stream, _clip(3))], audio_offset_s=0.1, frame_clock=clock).run()
    assert released == pytest.approx([start_s + 0.1 + i / FPS for i in range(3)])
    assert [f.t_s for f in sender.of_type(Frame)] == pytest.approx([0, 1 / FPS, 2 / FPS])


def test_pick_skips_stale_frames_but_never_the_last_and_waits_for_the_first():
    fake = FakeClock()
    clock = FrameClock(FPS, clock=fake, sleep=fake.sleep, skip_after_s=PERIOD_S * (1 - 1e-6))
    clock.start(10.0)
    assert clock.frame_at(9.99) == -1
    assert clock.pick(0, 99, now_s=9.99) is None  # frame 0 not due yet
    assert clock.pick(0, 99, now_s=10.0) == 0
    # 3.5 frames later: frames 0-2 have successors already due, frame 3 is the one to send.
    now = 10.0 + 3.5 / 60
    assert clock.frame_at(now) == 3
    assert clock.pick(0, 99, now_s=now) == 3 and clock.stats.n_skipped == 3
    assert clock.record(3, now_s=now) == pytest.approx(0.5 / 60)
    # The last frame of a line is sent even when it is late, so END follows it.
    assert clock.pick(4, 5, now_s=10.0 + 9 / 60) == 5
    assert clock.stats.n_frames == 1 and clock.stats.n_late == 1
