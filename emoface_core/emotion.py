"""Emotion specs: names and ids, intensities, and timelines that change emotion mid-clip.

Grammar of a spec (case-insensitive, spaces ignored)::

    spec    := segment ("," segment)*
    segment := emotion [":" intensity] ["@" start_s]
    emotion := angry|disgust|fear|happy|neutral|sad|surprise | a 3-letter prefix | an id 0-6

``happy`` is happy at full intensity for the whole clip; ``happy:0.6`` blends 60 % happy with
40 % neutral; ``happy@0,sad@2.5`` switches to sad at 2.5 s, cross-fading over ``fade_s``.
The first segment starts at 0 s when it has no ``@``. An engine turns the per-frame weights
over the 7 emotions (``EmotionTimeline.weights``) into its own codes, so both engines share
one meaning of a spec. ``EmotionControl`` is a timeline that a live stream changes as it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from emoface_core.audio import FPS
from emoface_core.errors import EmotionSpecError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
N_EMOTIONS = len(EMOTIONS)  # 7
NEUTRAL = EMOTIONS.index("neutral")  # 4
DEFAULT_FADE_S = 0.3  # cross-fade between timeline segments, centred on the switch time

_PREFIX = {name[:3]: i for i, name in enumerate(EMOTIONS)}  # ang dis fea hap neu sad sur


def emotion_id(token: str | int) -> int:
    """Return the id (0-6) of an emotion given by name, 3-letter prefix or id.

    Raises:
        EmotionSpecError: the token names no emotion.
    """
    text = str(token).strip().lower()
    if text.isdigit() and int(text) < N_EMOTIONS:
        return int(text)
    if text in EMOTIONS:
        return EMOTIONS.index(text)
    if text[:3] in _PREFIX and EMOTIONS[_PREFIX[text[:3]]].startswith(text):
        return _PREFIX[text[:3]]
    raise EmotionSpecError(
        f"unknown emotion {token!r}; use one of {', '.join(EMOTIONS)} or an id 0-6"
    )


def emotion_from_filename(name: str) -> int | None:
    """Return the emotion id from a release-style file name prefix (``ang_...``), else None."""
    return _PREFIX.get(name.strip().lower()[:3])


@dataclass(frozen=True)
class EmotionSegment:
    """One emotion held from ``start_s`` until the next segment starts."""

    emotion: int
    intensity: float = 1.0
    start_s: float = 0.0


@dataclass(frozen=True)
class EmotionTimeline:
    """A parsed emotion spec: segments in time order plus the cross-fade length."""

    segments: tuple[EmotionSegment, ...]
    fade_s: float = DEFAULT_FADE_S

    def __post_init__(self) -> None:
        if not self.segments:
            raise EmotionSpecError("an emotion timeline needs at least one segment")
        starts = [s.start_s for s in self.segments]
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise EmotionSpecError(f"segment start times must increase, got {starts}")
        if self.fade_s < 0:
            raise EmotionSpecError(f"fade_s must be >= 0, got {self.fade_s}")

    @classmethod
    def constant(cls, emotion: str | int, intensity: float = 1.0) -> EmotionTimeline:
        """One emotion for the whole clip."""
        return cls((EmotionSegment(emotion_id(emotion), float(intensity)),))

    def segment_weights(self, segment: EmotionSegment) -> np.ndarray:
        """The 7 weights of one segment: ``intensity`` on its emotion, the rest on neutral."""
        w = np.zeros(N_EMOTIONS, dtype=np.float32)
        w[NEUTRAL] += 1.0 - segment.intensity
        w[segment.emotion] += segment.intensity
        return w

    def weights(self, n_frames: int, fps: float = 60.0, start_frame: int = 0) -> np.ndarray:
        """Per-frame emotion weights ``[n_frames, 7]``, each row summing to 1.

        Args:
            n_frames: how many frames to return.
            fps: the frame rate that maps frames to seconds.
            start_frame: index of the first frame returned (for streaming).
        """
        t = (np.arange(n_frames, dtype=np.float64) + start_frame) / fps
        out = np.tile(self.segment_weights(self.segments[0]), (n_frames, 1))
        for seg in self.segments[1:]:
            if self.fade_s > 0:
                ramp = np.clip((t - (seg.start_s - self.fade_s / 2)) / self.fade_s, 0.0, 1.0)
            else:
                ramp = (t >= seg.start_s).astype(np.float64)
            out = out * (1.0 - ramp[:, None]) + self.segment_weights(seg) * ramp[:, None]
        return out.astype(np.float32)

    def to_spec(self) -> str:
        """Render back to the spec grammar (the canonical form kept in metadata)."""
        parts = []
        for seg in self.segments:
            text = EMOTIONS[seg.emotion]
            if seg.intensity != 1.0:
                text += f":{seg.intensity:g}"
            parts.append(f"{text}@{seg.start_s:g}")
        return ",".join(parts)

    def to_json(self) -> list[dict]:
        """A JSON-ready list of segments for baked-file metadata."""
        return [
            {"emotion": EMOTIONS[s.emotion], "intensity": s.intensity, "start_s": s.start_s}
            for s in self.segments
        ]


def parse_emotion_spec(spec: str | int, *, fade_s: float = DEFAULT_FADE_S) -> EmotionTimeline:
    """Parse a spec such as ``happy``, ``3``, ``happy:0.6`` or ``happy@0,sad@2.5``.

    Raises:
        EmotionSpecError: with the offending part and the allowed forms.
    """
    text = str(spec).replace(" ", "")
    if not text:
        raise EmotionSpecError("empty emotion spec; use e.g. 'happy', 'sad:0.5' or 'happy@0,sad@2'")
    segments = []
    for i, part in enumerate(text.split(",")):
        name, _, start = part.partition("@")
        name, _, intensity = name.partition(":")
        try:
            start_s = float(start) if start else (0.0 if i == 0 else None)
            level = float(intensity) if intensity else 1.0
        except ValueError:
            raise EmotionSpecError(
                f"bad emotion spec part {part!r}: expected EMOTION[:INTENSITY][@SECONDS]"
            ) from None
        if start_s is None:
            raise EmotionSpecError(f"emotion spec part {part!r} needs a start time (@SECONDS)")
        if not 0.0 <= level <= 1.0:
            raise EmotionSpecError(f"intensity in {part!r} must be within 0..1, got {level:g}")
        if start_s < 0 or not np.isfinite(start_s):
            raise EmotionSpecError(f"start time in {part!r} must be >= 0, got {start_s:g}")
        segments.append(EmotionSegment(emotion_id(name), level, start_s))
    try:
        return EmotionTimeline(tuple(segments), fade_s=fade_s)
    except EmotionSpecError as e:
        raise EmotionSpecError(f"bad emotion spec {text!r}: {e}") from None


class EmotionControl:
    """The emotion of one stream: a timeline that can be changed while the stream runs.

    Args:
        timeline: the initial emotion, times relative to the start of the stream.
        fps: frame rate of the stream.
    """

    def __init__(self, timeline: EmotionTimeline, fps: float = FPS) -> None:
        self._timeline = timeline
        self.fps = float(fps)
        self.n_changes = 0

    @property
    def timeline(self) -> EmotionTimeline:
        """The current timeline (segments that can still matter)."""
        return self._timeline

    def weights(self, start_frame: int, n_frames: int) -> np.ndarray:
        """Emotion weights ``[n_frames, 7]`` of frames ``start_frame ..``."""
        return self._timeline.weights(n_frames, self.fps, start_frame)

    def set(self, emotion: str | int | EmotionTimeline, at_frame: int) -> EmotionTimeline:
        """Switch to ``emotion`` from frame ``at_frame`` on, cross-fading from there.

        The new spec's times count from ``at_frame`` (``happy@0,sad@2`` turns sad two seconds
        later); segments of the old timeline that had not started yet are dropped.

        Raises:
            EmotionSpecError: the spec does not parse.
        """
        fade_s = self._timeline.fade_s
        new = (
            emotion
            if isinstance(emotion, EmotionTimeline)
            else parse_emotion_spec(emotion, fade_s=fade_s)
        )
        now_s = at_frame / self.fps
        start_s = now_s + fade_s / 2  # the fade is centred on a segment's start: begin it now
        kept = [seg for seg in self._timeline.segments if seg.start_s < start_s]
        # A segment fully faded in by now makes everything before it irrelevant from now on.
        first = max(
            (i for i, seg in enumerate(kept) if i and seg.start_s + fade_s / 2 <= now_s), default=0
        )
        added = [replace(seg, start_s=start_s + seg.start_s) for seg in new.segments]
        self._timeline = EmotionTimeline(tuple(kept[first:] + added), fade_s=fade_s)
        self.n_changes += 1
        return self._timeline
