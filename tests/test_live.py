"""The live loop (bridge.runtime.live): gaps, control commands, playout pacing, latency."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_sine, tiny_model

from bridge.runtime.live import LiveRunner, apply_command
from emoface_core.audio import SAMPLE_RATE, Audio, frame_count
from emoface_core.emotion import EmotionTimeline
from emoface_core.engines.base import EngineBase
from emoface_core.streaming import StreamConfig, Streamer
from emoface_core.testing.clocks import FakeClock

pytest.importorskip("transformers")

CHUNK_20MS = SAMPLE_RATE // 50  # 320 samples


def _engine():
    from emoface_core.engines.neural.engine import NeuralEngine

    return NeuralEngine(tiny_model(), precision="fp32")


def _speechlike(duration_s: float, seed: int = 0) -> np.ndarray:
    """Sine bursts with pauses: varying level, like syllables and gaps in speech."""
    x = make_sine(duration_s, freq_hz=180.0)
    t = np.arange(x.size) / SAMPLE_RATE
    envelope = np.clip(np.sin(2 * np.pi * 2.3 * t) + 0.3, 0.0, 1.0)
    noise = 0.01 * np.random.default_rng(seed).standard_normal(x.size)
    return (x * envelope + noise).astype(np.float32)


class _LocalEngine(EngineBase):
    """An engine without a stream API whose frame t depends only on audio near t."""

    name = "local"
    wants_smoothing = False

    def infer(self, audio: Audio, timeline: EmotionTimeline) -> np.ndarray:
        n = audio.n_frames
        edges = np.arange(n + 1) * SAMPLE_RATE // 60
        rms = [np.sqrt(np.mean(audio.samples[a:b] ** 2)) for a, b in zip(edges, edges[1:])]
        happy = timeline.weights(n)[:, 3]
        return np.repeat((np.asarray(rms) + happy)[:, None], 174, axis=1).astype(np.float32)

    def describe(self) -> dict:
        return {"name": self.name}


@pytest.mark.parametrize(
    ("text", "emotion"),
    [("emotion sad", 5), ("happy:0.5", 3), ('{"emotion": "fear"}', 2), ("EMOTION 6", 6)],
)
def test_control_commands_change_the_emotion(text, emotion):
    stream = Streamer(_LocalEngine()).open("neutral")
    assert apply_command(stream, text) is False
    assert stream.emotion.timeline.segments[-1].emotion == emotion


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty"),
        ("emotion", "needs a spec"),
        ("{not json", "not usable JSON"),
        ("emotion grr", "unknown emotion"),
    ],
)
def test_bad_control_commands_are_refused(text, error):
    stream = Streamer(_LocalEngine()).open("neutral")
    with pytest.raises(ValueError, match=error):
        apply_command(stream, text)
    assert apply_command(stream, "quit") is True


class _ScriptedSource:
    """A real-time source on a fake clock: chunk i arrives at its capture time, with a stall."""

    realtime = True

    def __init__(
        self,
        samples: np.ndarray,
        clock: FakeClock,
        stall: tuple[float, float],
        chunk: int = CHUNK_20MS,
    ) -> None:
        self.samples, self.clock, self.stall, self.chunk = samples, clock, stall, chunk
        self.start = clock.now_s
        self.pos = 0

    def read(self, timeout_s: float) -> np.ndarray | None:
        if self.pos >= self.samples.size:
            return None
        due = self.start + (self.pos + self.chunk) / SAMPLE_RATE
        lo, hi = self.stall
        if lo <= due - self.start < hi:  # the network stalls: these chunks never arrive
            self.pos += self.chunk
            self.clock.now_s += timeout_s
            return np.zeros(0, np.float32)
        if due > self.clock.now_s + timeout_s:
            self.clock.now_s += timeout_s
            return np.zeros(0, np.float32)
        self.clock.now_s = max(self.clock.now_s, due)
        chunk = self.samples[self.pos : self.pos + self.chunk]
        self.pos += self.chunk
        return chunk


class _Commands:
    def __init__(self, script: dict[int, str]) -> None:
        self.script, self.calls = script, 0

    def poll(self) -> list[str]:
        self.calls += 1
        return [self.script[self.calls]] if self.calls in self.script else []


def test_live_runner_fills_gaps_applies_commands_and_ends_with_the_source():
    clock = FakeClock(100.0)
    speech = _speechlike(2.0)
    source = _ScriptedSource(speech, clock, stall=(0.8, 1.4))
    stream = Streamer(_engine()).open("neutral", seed=0)
    received: list[tuple[int, int]] = []
    runner = LiveRunner(
        source,
        stream,
        lambda frames, first: received.append((first, len(frames))),
        controls=[_Commands({10: "emotion happy", 20: "emotion nonsense"})],
        gap_timeout_s=0.1,
        clock=clock,
    )
    stats = runner.run()
    assert stats.end_reason == "source ended"
    assert stats.n_gaps == 1 and stats.n_gap_samples > 0.4 * SAMPLE_RATE
    assert stats.n_emotion_changes == 1 and stats.n_bad_commands == 1
    # Frames are contiguous and cover the audio plus the filled gap.
    firsts = [f for f, _ in received]
    assert firsts == list(np.cumsum([0] + [n for _, n in received[:-1]]))
    assert stats.n_frames == frame_count(stream.n_samples_in, SAMPLE_RATE)
    # Latency on the fake clock: lookahead + hop + smoothing, no compute time.
    assert 0.0 < stats.latency_percentile(50) < 0.5


@pytest.mark.parametrize(("lookahead", "chunk_ms"), [(0, 10), (0, 20), (6, 20)])
def test_procedural_frames_leave_within_the_stated_latency(lookahead, chunk_ms):
    """With instant compute, every frame leaves within ``algorithmic_latency_s`` of its audio."""
    from emoface_core.engines.procedural.engine import ProceduralEngine

    engine = ProceduralEngine(lookahead_frames=lookahead)
    stream = Streamer(engine).open("happy", seed=1)
    chunk_s = chunk_ms / 1000
    bound_s = stream.algorithmic_latency_s(chunk_s)
    assert bound_s == pytest.approx(0.5 / 60 + engine.latency_ms / 1000 + chunk_s)
    assert stream.hop_frames == 1 and stream.lookahead_frames == engine.stream_lookahead_frames
    clock = FakeClock(100.0)
    source = _ScriptedSource(_speechlike(1.0), clock, stall=(0, 0), chunk=chunk_ms * 16)
    stats = LiveRunner(source, stream, lambda frames, first: None, clock=clock).run()
    latency = np.array(stats.latency_s)
    assert stats.n_frames == 60 and latency.size == 60
    # The bound holds and is nearly reached (a frame whose audio ends just after a chunk).
    assert latency.max() <= bound_s + 1e-9 and latency.max() > bound_s - chunk_s
    if lookahead == 0:
        assert bound_s < 0.05  # the procedural engine's 50 ms end-to-end target, before compute


class _RealtimeListSource:
    """Chunks released at their capture times on the real clock (a live feed)."""

    realtime = True

    def __init__(self, samples: np.ndarray) -> None:
        self.samples, self.pos, self.start = samples, 0, None

    def read(self, timeout_s: float) -> np.ndarray | None:
        import time

        if self.start is None:
            self.start = time.monotonic()
        if self.pos >= self.samples.size:
            return None
        due = self.start + (self.pos + CHUNK_20MS) / SAMPLE_RATE
        wait = due - time.monotonic()
        if wait > timeout_s:
            time.sleep(timeout_s)
            return np.zeros(0, np.float32)
        time.sleep(max(0.0, wait))
        chunk = self.samples[self.pos : self.pos + CHUNK_20MS]
        self.pos += CHUNK_20MS
        return chunk


def test_playout_releases_frames_at_a_steady_rate_and_fixed_latency():
    import time

    stream = Streamer(_LocalEngine(), StreamConfig(hop_frames=6, lookahead_frames=6)).open("sad")
    sent: list[tuple[float, int]] = []

    def sink(frames: np.ndarray, first: int) -> None:
        sent.extend((time.monotonic(), first + i) for i in range(len(frames)))

    delay_s = 0.25
    stats = LiveRunner(
        _RealtimeListSource(_speechlike(0.8)), stream, sink, playout_delay_s=delay_s
    ).run()
    assert [f for _, f in sent] == list(range(48)) and stats.n_frames == 48
    latency = np.array(stats.latency_s)
    assert np.all(latency >= delay_s - 1e-3)
    assert np.median(latency) < delay_s + 0.01 and stats.n_late <= 2
    gaps = np.diff([t for t, _ in sent])
    assert np.median(gaps) == pytest.approx(1 / 60, abs=0.004)  # one frame at a time, 60 fps
