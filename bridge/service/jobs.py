"""The service's inference worker: one ``speak`` or ``bake`` job at a time, on the engine.

The request thread validates a request and builds a job; the worker thread runs it here. A
job touches only what it is given (the engine, and a callback that hands a computed line to the
player), so this module knows nothing of sockets or of the ``Service`` that schedules it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.bake.render import render
from bridge.runtime.lines import LineRecord, Playback
from bridge.runtime.subject import Output, frames_with_head
from bridge.service.requests import AudioRef, RequestError, error_reply
from bridge.transcript.espeak import EspeakError
from emoface_core.animate import animate_audio
from emoface_core.emotion import EmotionTimeline
from emoface_core.engines.base import Engine
from emoface_core.errors import EmoFaceError
from emoface_core.formats import atomic_write

log = logging.getLogger(__name__)


@dataclass
class LineJob:
    """A ``speak`` request, validated: what to animate and how to play it."""

    record: LineRecord
    audio: AudioRef  # checked from its header; decoded here, off the request thread
    timeline: EmotionTimeline
    seed: int | None
    raw: bool
    outputs: list[Output] | None  # None: every output of the service
    start_at: float | None  # Unix time at which the line's audio starts; None: when ready
    blend_frames: int
    info: dict[str, Any]
    text: str = ""  # the line's transcript ("" none), spoken in ``language``
    language: str = "en"
    network_lips: bool = False


@dataclass
class BakeJob:
    """A ``bake`` request, validated."""

    audio: AudioRef
    timeline: EmotionTimeline
    seed: int | None
    raw: bool
    fmt: str
    output: str | None  # None: the animation goes back in the reply
    mapping: Any  # a bridge.mapping.Mapping for mapped CSV, or None
    text: str = ""
    language: str = "en"
    network_lips: bool = False


def _animate(job: LineJob | BakeJob, engine: Engine, audio: Any) -> Any:
    """The animation of a job's audio, with its transcript's lips when it has one."""
    from bridge.transcript.prepare import lip_layer_for, prepare_template

    layer = lip_layer_for(engine.name, job.network_lips)
    template = prepare_template(job.text, job.language, "require") if layer else None
    return animate_audio(
        engine,
        audio,
        job.timeline,
        raw=job.raw,
        seed=job.seed,
        transcript=template,
        lip_layer=layer or "full",
    )


def run_line(
    job: LineJob,
    engine: Engine,
    submit: Callable[[Playback], None],
    default_outputs: Sequence[Output],
) -> None:
    """Animate one line and hand it to the player; failures end up in the line's record."""
    record = job.record
    try:
        if record.cancel_requested or record.final:
            return
        record.state = "computing"
        audio = job.audio.load()
        animation = _animate(job, engine, audio)
        if record.final:  # cancelled or superseded while computing
            return
        if animation.n_frames == 0:
            record.end("finished", "the audio is shorter than one frame")
            return
        if job.start_at is not None:
            t0 = time.monotonic() + (job.start_at - time.time())
        else:
            t0 = time.monotonic()
        outputs = list(job.outputs if job.outputs is not None else default_outputs)
        frames = frames_with_head(animation.values, animation.head)
        submit(Playback(record, frames, t0, job.info, outputs, job.blend_frames))
    except Exception as e:
        log.warning("emoface serve: line %s failed: %s", record.id, e, exc_info=True)
        record.end(
            "failed",
            str(e) if isinstance(e, (EmoFaceError, ValueError)) else f"{type(e).__name__}: {e}",
        )
    finally:
        job.audio.discard()


def run_bake(job: BakeJob, engine: Engine) -> dict[str, Any]:
    """Bake one clip; returns the reply (an error reply for any failure, never raises)."""
    try:
        audio = job.audio.load()
        animation = _animate(job, engine, audio)
        text = render(animation, job.fmt, job.mapping)
        reply: dict[str, Any] = {
            "ok": True,
            "op": "bake",
            "n_frames": animation.n_frames,
            "duration_s": round(animation.duration_s, 4),
            "format": job.fmt,
        }
        if "transcript" in animation.metadata:
            reply["transcript"] = animation.metadata["transcript"]
        if job.output is not None:
            try:
                Path(job.output).parent.mkdir(parents=True, exist_ok=True)
                atomic_write(job.output, text)
            except OSError as e:  # the request's path, not the service, is at fault
                raise RequestError("bad_output", f"{job.output}: cannot write ({e})") from None
            reply["path"] = str(Path(job.output).resolve())
        elif job.fmt == "json":
            reply["animation"] = json.loads(text)
        else:
            reply["text"] = text
        return reply
    except RequestError as e:
        return error_reply(e.code, str(e))
    except EspeakError as e:  # the machine lacks the synthesiser, not the request a field
        return error_reply("unavailable", str(e))
    except (EmoFaceError, ValueError, OSError) as e:
        return error_reply("bad_request" if isinstance(e, ValueError) else "internal", str(e))
    except Exception as e:
        log.exception("emoface serve: bake failed")
        return error_reply("internal", f"{type(e).__name__}: {e}")
    finally:
        job.audio.discard()
