"""Live and bake settings: validated dataclasses, saved as JSON under the project's Saved folder.

Values are checked in ``__post_init__`` and a bad one raises ``ValueError`` naming the field,
the value and what is allowed, so a typo in the settings dialog shows as one clear line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

TRANSPORTS = ("zmq", "osc")
ZMQ_BACKENDS = ("auto", "pyzmq", "builtin")
APPLY_MODES = ("channels", "rig_setters", "hierarchy")
LEGACY_APPLY_MODES = {"sequencer": "rig_setters"}  # settings saved by earlier versions
KEY_STRATEGIES = ("channels", "auto", "rig")
DEFAULT_ZMQ_ENDPOINT = "tcp://127.0.0.1:5555"  # the bridge's default PUB endpoint
DEFAULT_OSC_ENDPOINT = "127.0.0.1:9000"  # where `emoface stream --osc` sends by default
DEFAULT_SUBJECT = "emoface"  # what `emoface stream` sends when no --subject is given
DEFAULT_OUTPUT_PATH = "/Game/EmoFace/Baked"
SETTINGS_FILE = "EmoFace/settings.json"  # relative to the project's Saved folder
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
_ASSET_PATH_RE = re.compile(r"^/[A-Za-z0-9_]+(/[A-Za-z0-9_ \-]+)*$")

T = TypeVar("T")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(allowed)}, but {value!r} is provided")


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        raise ValueError(f"`{name}` must be between {lo:g} and {hi:g}, but {value!r} is provided")


def parse_bindings(text: str) -> list[tuple[str, str]]:
    """``"npc1=BP_Ada, npc2=BP_Bob"`` -> ``[("npc1", "BP_Ada"), ("npc2", "BP_Bob")]``.

    Raises:
        ValueError: an item is not ``subject=actor`` or a subject is invalid or repeated.
    """
    out: list[tuple[str, str]] = []
    for item in re.split(r"[,;\n]", text):
        item = item.strip()
        if not item:
            continue
        subject, sep, actor = (part.strip() for part in item.partition("="))
        if not sep or not subject or not actor:
            raise ValueError(
                f"`more_bindings` items must look like subject=ActorLabel, got {item!r}"
            )
        out.append((subject, actor))
    return out


def check_endpoint(transport: str, endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of an endpoint for a transport.

    Raises:
        ValueError: not ``tcp://HOST:PORT`` (zmq) or ``HOST:PORT`` (osc), or a bad port.
    """
    text = endpoint.strip()
    if transport == "zmq":
        if not text.startswith("tcp://"):
            raise ValueError(
                f"`endpoint` for zmq must look like tcp://127.0.0.1:5555, but {endpoint!r} "
                "is provided (the editor subscribes over TCP)"
            )
        text = text[len("tcp://") :]
    elif "://" in text:
        raise ValueError(
            f"`endpoint` for osc must look like 127.0.0.1:9000, but {endpoint!r} is provided"
        )
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    lowest = 1 if transport == "zmq" else 0  # listening on port 0 takes any free port (tests)
    if not sep or not host or not port.isdigit() or not lowest <= int(port) <= 65535:
        raise ValueError(
            f"`endpoint` needs HOST:PORT with a port in {lowest}..65535, but {endpoint!r} "
            "is provided"
        )
    return host, int(port)


@dataclass
class LiveSettings:
    """How the editor receives a stream and which MetaHumans it drives.

    Attributes:
        transport: "zmq" (subscribe to ``emoface stream --zmq``) or "osc" (listen for
            ``emoface stream --osc``).
        endpoint: zmq: the sender's ``tcp://HOST:PORT``; osc: the ``HOST:PORT`` to listen on;
            empty: the bridge's default for the transport.
        subject: the stream subject (NPC) to drive.
        actor: label of the MetaHuman actor in the level; empty: the selected actor at start.
        more_bindings: extra ``subject=ActorLabel`` pairs, comma separated, for several NPCs.
        zmq_backend: "auto" (pyzmq when the editor has it, else the built-in subscriber),
            "pyzmq" or "builtin".
        apply_mode: "channels" (default: each control's Sequencer channel default, then one
            forced evaluation per editor tick), "rig_setters" (ControlRigSequencerLibrary
            setters, unkeyed: Sequencer's interactive keying path, one transaction per call) or
            "hierarchy" (the rig hierarchy directly; a Sequencer evaluation overwrites it).
        play_audio: play the line's audio (named in the stream's START message) in the editor.
        audio_folder: where to look for line audio whose path (from the sender) does not exist
            on this machine: the file of that name in this folder.
        audio_offset_ms: when the audio starts relative to the face; positive plays it later.
        watchdog_timeout_ms: return the face to rest when no frame came for this long.
        jaw_self_test: at bind time, check which way the jaw control opens the jaw.
        face_rig_asset: face control rig asset path; empty: the standard MetaHuman face board.
        queue_size: packets buffered between the network thread and the editor tick.
    """

    transport: str = "zmq"
    endpoint: str = ""
    subject: str = DEFAULT_SUBJECT
    actor: str = ""
    more_bindings: str = ""
    zmq_backend: str = "auto"
    apply_mode: str = "channels"
    play_audio: bool = True
    audio_folder: str = ""
    audio_offset_ms: float = 0.0
    watchdog_timeout_ms: float = 500.0
    jaw_self_test: bool = True
    face_rig_asset: str = ""
    queue_size: int = 256

    def __post_init__(self) -> None:
        _check_choice("transport", self.transport, TRANSPORTS)
        _check_choice("zmq_backend", self.zmq_backend, ZMQ_BACKENDS)
        self.apply_mode = LEGACY_APPLY_MODES.get(self.apply_mode, self.apply_mode)
        _check_choice("apply_mode", self.apply_mode, APPLY_MODES)
        if not self.endpoint.strip():
            self.endpoint = (
                DEFAULT_ZMQ_ENDPOINT if self.transport == "zmq" else DEFAULT_OSC_ENDPOINT
            )
        check_endpoint(self.transport, self.endpoint)
        if not _SUBJECT_RE.match(self.subject):
            raise ValueError(
                f"`subject` must be 1-255 letters, digits or _.-, but {self.subject!r} is provided"
            )
        for subject, _ in parse_bindings(self.more_bindings):
            if not _SUBJECT_RE.match(subject):
                raise ValueError(
                    f"`more_bindings` subject {subject!r} must be letters, digits or _.-"
                )
        subjects = [s for s, _ in self.bindings()]
        if len(set(subjects)) != len(subjects):
            raise ValueError(f"`more_bindings` repeats a subject: {', '.join(subjects)}")
        _check_range("audio_offset_ms", self.audio_offset_ms, -5000, 5000)
        _check_range("watchdog_timeout_ms", self.watchdog_timeout_ms, 50, 60_000)
        _check_range("queue_size", self.queue_size, 8, 100_000)
        self.queue_size = int(self.queue_size)
        if self.face_rig_asset and not _ASSET_PATH_RE.match(self.face_rig_asset.split(".")[0]):
            raise ValueError(
                f"`face_rig_asset` must be an asset path like /Game/MetaHumans/Common/Face/"
                f"Face_ControlBoard_CtrlRig, but {self.face_rig_asset!r} is provided"
            )

    def bindings(self) -> list[tuple[str, str]]:
        """``(subject, actor label)`` pairs; an empty label means "the selected actor"."""
        return [(self.subject, self.actor), *parse_bindings(self.more_bindings)]


@dataclass
class BakeSettings:
    """How a folder of baked files becomes Unreal assets.

    Attributes:
        input_folder: folder of ``.json``/``.txt`` files (or one file).
        output_path: content folder for the new assets, e.g. ``/Game/EmoFace/Baked``.
        actor: MetaHuman actor label bound in the Level Sequences; empty: the selected actor.
        level_sequence: make a Level Sequence with keys on the face control rig.
        anim_sequence: make an AnimSequence with ``CTRL_expressions_*`` curves.
        face_skeleton: skeleton asset for AnimSequences; empty: the bound actor's face skeleton.
        audio_folder: folder of audio named like the baked files (``line.wav`` for
            ``line.json``); empty: the folder of each file, then the JSON's ``source_audio``.
        replace_existing: overwrite assets of the same name (otherwise they are skipped).
        txt_fps: frame rate of ``.txt`` files (the authors' files are 60 fps).
        key_strategy: "channels" (default: keys written straight into each control's
            Sequencer channel), "auto" (the rig's batch setters, then checked and repaired
            through the channels) or "rig" (the batch setters only: Sequencer's interactive
            keying path once per frame and control, slowest).
        face_rig_asset: face control rig asset path; empty: the standard MetaHuman face board.
        flip_jaw_y: key the jaw's Y negated (set it when live drive's jaw self-test reports that
            this rig opens the jaw with -Y).
    """

    input_folder: str = ""
    output_path: str = DEFAULT_OUTPUT_PATH
    actor: str = ""
    level_sequence: bool = True
    anim_sequence: bool = False
    face_skeleton: str = ""
    audio_folder: str = ""
    replace_existing: bool = False
    txt_fps: float = 60.0
    key_strategy: str = "channels"
    face_rig_asset: str = ""
    flip_jaw_y: bool = False

    def __post_init__(self) -> None:
        _check_choice("key_strategy", self.key_strategy, KEY_STRATEGIES)
        _check_range("txt_fps", self.txt_fps, 1, 1000)
        if not _ASSET_PATH_RE.match(self.output_path.rstrip("/")):
            raise ValueError(
                f"`output_path` must be a content folder like {DEFAULT_OUTPUT_PATH}, "
                f"but {self.output_path!r} is provided"
            )
        self.output_path = self.output_path.rstrip("/")
        if not (self.level_sequence or self.anim_sequence):
            raise ValueError("nothing to make: enable `level_sequence` and/or `anim_sequence`")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build settings from a dict, ignoring (and logging) unknown keys.

    Raises:
        ValueError: a value is invalid (names the field).
    """
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        log.warning("EmoFace: ignoring unknown settings %s", ", ".join(unknown))
    kwargs = {}
    for name, value in data.items():
        if name not in known:
            continue
        default = known[name].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError(f"`{name}` must be true or false, but {value!r} is provided")
        if isinstance(default, str) and not isinstance(value, str):
            raise ValueError(f"`{name}` must be text, but {value!r} is provided")
        kwargs[name] = value
    return cls(**kwargs)


def load_settings(path: str | Path) -> tuple[LiveSettings, BakeSettings]:
    """Read saved settings; defaults when the file does not exist.

    Raises:
        ValueError: the file is not valid JSON or holds an invalid value (names the file).
    """
    path = Path(path)
    if not path.is_file():
        return LiveSettings(), BakeSettings()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("the file must hold a JSON object")
        return from_dict(LiveSettings, doc.get("live", {})), from_dict(
            BakeSettings, doc.get("bake", {})
        )
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from e


def save_settings(path: str | Path, live: LiveSettings, bake: BakeSettings) -> None:
    """Write settings atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {"live": dataclasses.asdict(live), "bake": dataclasses.asdict(bake)}, indent=1
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
