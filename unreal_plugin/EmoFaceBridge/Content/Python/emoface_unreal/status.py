"""The live status the EmoFace menu shows: a plain snapshot and its text, without Unreal."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SubjectStatus:
    """One driven subject.

    Attributes:
        subject: stream subject.
        actor: the MetaHuman actor's label.
        n_applied: frames applied to its rig.
        n_controls: controls written per frame (0 before a schema arrived).
        n_unresolved: schema targets its rig has no control for.
        line_id: current line, 0 when none started.
        last_seq: sequence number of the newest frame.
        lag_ms: how late the newest frame arrived relative to its audio time.
        jaw: jaw self-test result (``selftest``: "moved (+Y opens)", "did not move"...,
            "off").
        mapping: the sender's mapping id and target kind.
        audio: the line audio: the path played, or what was tried and why it did not play.
    """

    subject: str
    actor: str
    n_applied: int = 0
    n_controls: int = 0
    n_unresolved: int = 0
    line_id: int = 0
    last_seq: int | None = None
    lag_ms: float | None = None
    jaw: str = "off"
    mapping: str = ""
    audio: str = ""


@dataclass
class LiveStatus:
    """Everything the status dialog shows.

    Attributes:
        state: "stopped", "connecting", "listening" or "receiving".
        source: transport description (endpoint, backend).
        n_packets: packets read from the network.
        n_frames: frames accepted by the decoder.
        n_applied: frames applied to rigs.
        dropped: reason -> count of frames that never reached a rig.
        n_malformed: packets that were not valid messages.
        last_error: the newest error, "" when none.
        last_error_age_s: seconds since it happened.
        subjects: per-subject details.
        tick_hz: editor ticks per second over the last seconds (0 before two ticks).
        apply_hz: ticks per second that wrote a frame to a face.
        hint: advice when something looks wrong (e.g. a throttled editor).
    """

    state: str = "stopped"
    source: str = ""
    n_packets: int = 0
    n_frames: int = 0
    n_applied: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    n_malformed: int = 0
    last_error: str = ""
    last_error_age_s: float = 0.0
    subjects: list[SubjectStatus] = field(default_factory=list)
    tick_hz: float = 0.0
    apply_hz: float = 0.0
    hint: str = ""

    @property
    def n_dropped(self) -> int:
        """Frames dropped, all reasons."""
        return sum(self.dropped.values())

    def text(self) -> str:
        """A few lines for a dialog or the Output Log."""
        lines = [f"EmoFace live: {self.state}" + (f" ({self.source})" if self.source else "")]
        if self.state == "stopped" and not self.n_packets:
            return lines[0]
        reasons = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if v) or "none"
        lines.append(
            f"  packets {self.n_packets}, frames received {self.n_frames}, applied "
            f"{self.n_applied}, dropped {self.n_dropped} ({reasons}), malformed {self.n_malformed}"
        )
        if self.tick_hz:
            lines.append(
                f"  editor ticks {self.tick_hz:.0f}/s, faces updated {self.apply_hz:.0f}/s"
            )
        for s in self.subjects:
            parts = [f"  {s.subject} -> {s.actor or '(no actor)'}: {s.n_applied} frames applied"]
            if s.mapping:
                parts.append(f"mapping {s.mapping}")
            if s.n_controls:
                parts.append(f"{s.n_controls} controls, {s.n_unresolved} unresolved")
            if s.line_id:
                parts.append(f"line {s.line_id}")
            if s.last_seq is not None:
                parts.append(f"seq {s.last_seq}")
            if s.lag_ms is not None:
                parts.append(f"lag {s.lag_ms:.0f} ms")
            if s.jaw != "off":
                parts.append(f"jaw test {s.jaw}")
            if s.audio:
                parts.append(f"audio {s.audio}")
            lines.append(", ".join(parts))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        if self.last_error:
            lines.append(f"  last error ({self.last_error_age_s:.0f} s ago): {self.last_error}")
        return "\n".join(lines)
