"""What several subcommands share: help formatter, validators, engine and transport options.

The option groups come with the functions that build what they ask for (``build_engine``,
``build_outputs``), so no command imports another.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.runtime.subject import Output
    from bridge.transports.base import Sender
    from bridge.transports.zmq import CurveKeys
    from emoface_core.engines.base import Engine

log = logging.getLogger(__name__)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the epilog's layout; show defaults only where they say something."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        # Descriptions are written as one long line: wrap lines that do not fit. Epilogs are laid
        # out by hand: their lines fit, and indented lines (examples, commands) stay as written.
        lines = []
        for line in text.splitlines():
            if len(indent) + len(line) <= width or line.startswith(" "):
                lines.append(indent + line)
            else:
                lines.extend(
                    textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n".join(lines)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Only defaults that say something: not None/False/[], not already in the help text.
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """Argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """Argparse type: a whole number >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """Argparse type: a number > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """Argparse type: a number >= 0."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def port(text: str) -> int:
    """Argparse type: a UDP/TCP port, 0 (any free port) to 65535."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


def check_output_location(path: str) -> None:
    """Fail now, not after a long run, when ``path`` could not be written.

    The nearest existing folder above it must be a writable folder (missing folders below it
    are created when the file is written).

    Raises:
        ValueError: one line naming the file and the problem.
    """
    import os
    from pathlib import Path

    target = Path(path).expanduser()
    if target.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{path}: cannot write there ({folder} is not a folder)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: cannot write there (no permission in {folder})")


EMOTION_EPILOG = """
emotion spec (--emotion):
  happy             one emotion for the whole clip (names, 3-letter prefixes or ids 0-6:
                    angry 0, disgust 1, fear 2, happy 3, neutral 4, sad 5, surprise 6)
  happy:0.6         60 % happy blended with neutral
  happy@0,sad@2.5   switch to sad at 2.5 s, cross-fading over 0.3 s
"""


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """Engine, emotion and device flags shared by bake, stream, serve and live.

    The help's epilog gets the emotion spec section that ``--emotion`` points to.
    """
    p.epilog = (p.epilog or "").rstrip("\n") + "\n" + EMOTION_EPILOG
    p.add_argument("--emotion", default="neutral", help="emotion spec (see below); default neutral")
    p.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "emoface", "procedural"),
        help="animator; auto = emoface when a checkpoint is configured, else procedural",
    )
    p.add_argument("--checkpoint", default=None, help="EmoFace weights (*.pth)")
    p.add_argument(
        "--device", default=None, choices=("cpu", "cuda"), help="default: cuda if available"
    )
    p.add_argument(
        "--precision",
        default=None,
        choices=("exact", "fast"),
        help="the network's arithmetic: exact = float32 (the release's outputs); fast = the "
        "device's native low precision (CPU: bf16 on AMX/AVX512-BF16; CUDA: fp16), within "
        "0.005 mean of exact; default exact (live: fast where the CPU has it)",
    )


def build_engine(
    args: argparse.Namespace,
    *,
    procedural_lookahead_frames: int | None = None,
    default_precision: str = "exact",
) -> Engine:
    """Load the engine the flags ask for and say once, on stderr, which one runs.

    Args:
        args: parsed ``add_engine_arguments`` flags.
        procedural_lookahead_frames: the procedural engine's lookahead (live use); ignored,
            with a note, for the network.
        default_precision: the network's precision when ``--precision`` is not given ("fast"
            only where the CPU has native low-precision units, else "exact").
    """
    from emoface_core.engines import load_engine

    engine = load_engine(args.engine, checkpoint=args.checkpoint, device=args.device)
    if engine.name == "emoface":
        from emoface_core.engines.neural.engine import NeuralEngine

        assert isinstance(engine, NeuralEngine)
        precision = args.precision
        if precision is None:
            precision = default_precision
            if precision == "fast" and not _has_fast_path(engine):
                precision = "exact"
        engine = engine.with_precision(precision)
        path = f" ({engine.precision_note})" if engine.precision_note else ""
        if not getattr(args, "quiet", False):
            print(f"emoface: engine emoface, precision {precision}{path}", file=sys.stderr)
    else:
        if not getattr(args, "quiet", False):
            print(f"emoface: engine {engine.name}", file=sys.stderr)
        if args.precision is not None:
            print(
                "emoface: note: --precision applies to the network only; ignored",
                file=sys.stderr,
            )
    if procedural_lookahead_frames is not None:
        from emoface_core.engines.procedural.engine import ProceduralEngine

        if isinstance(engine, ProceduralEngine):
            engine = engine.with_lookahead(procedural_lookahead_frames)
        else:
            print(
                "emoface: note: --procedural-lookahead-frames applies to the procedural engine "
                "only; ignored",
                file=sys.stderr,
            )
    return engine


def _has_fast_path(engine: Engine) -> bool:
    """Whether "fast" would run a low-precision path for this network (CUDA: fp16)."""
    from emoface_core.engines.neural.engine import NeuralEngine
    from emoface_core.engines.neural.fastmode import choose_fast_mode

    assert isinstance(engine, NeuralEngine)
    if next(engine.model.parameters()).device.type == "cuda":
        return True
    return choose_fast_mode()[0] != "off"


DEFAULT_SUBJECT = "emoface"


def add_transport_arguments(p: argparse.ArgumentParser) -> None:
    """Mapping and transport flags, shared by ``stream`` and ``live``."""
    from bridge.mapping import DEFAULT_MAPPING

    p.add_argument(
        "--mapping", default=DEFAULT_MAPPING, help="mapping file or shipped name for ZeroMQ and OSC"
    )
    p.add_argument(
        "--zmq",
        nargs="?",
        const="tcp://127.0.0.1:5555",
        default=None,
        metavar="ENDPOINT",
        help="publish on a ZeroMQ PUB socket",
    )
    p.add_argument(
        "--zmq-hwm",
        type=positive_int,
        default=16,
        help="ZeroMQ per-subscriber queue, in messages (latest-only beyond it)",
    )
    p.add_argument(
        "--osc",
        nargs="?",
        const="127.0.0.1:9000",
        default=None,
        metavar="HOST:PORT",
        help="send OSC bundles",
    )
    p.add_argument(
        "--osc-mode",
        choices=("named", "array"),
        default="named",
        help="one OSC message per target, or one message with all values",
    )
    p.add_argument(
        "--livelink",
        nargs="?",
        const="127.0.0.1:11111",
        default=None,
        metavar="HOST:PORT",
        help="send Live Link Face packets",
    )
    p.add_argument(
        "--livelink-mapping",
        default="arkit52",
        help="mapping for Live Link Face (targets must be ARKit names)",
    )
    p.add_argument(
        "--schema-interval-s",
        type=positive_float,
        default=0.5,
        help="repeat the schema this often so late receivers can decode",
    )
    auth = p.add_argument_group(
        "authentication (needed to bind ZeroMQ beyond 127.0.0.1; see docs/security.md)"
    )
    auth.add_argument(
        "--secret-key",
        default=None,
        metavar="SERVER.key_secret",
        help="this server's CURVE certificate (make one with 'emoface keys')",
    )
    auth.add_argument(
        "--authorized-keys",
        default=None,
        metavar="DIR",
        help="folder of the public certificates (*.key) of the clients allowed to connect",
    )


def curve_keys(args: argparse.Namespace) -> CurveKeys | None:
    """The CURVE settings the authentication flags give (None: none given).

    Raises:
        ValueError: only one of the two flags is given.
    """
    from bridge.transports.zmq import CurveKeys

    if (args.secret_key is None) != (args.authorized_keys is None):
        raise ValueError("--secret-key and --authorized-keys go together")
    if args.secret_key is None:
        return None
    return CurveKeys(args.secret_key, args.authorized_keys)


def build_outputs(args: argparse.Namespace) -> tuple[list[Sender], list[Output]]:
    """The senders the transport flags ask for, each paired with the mapping it sends."""
    from bridge.mapping import load_mapping
    from bridge.runtime.subject import Output

    mapping = load_mapping(args.mapping)
    livelink_mapping = load_mapping(args.livelink_mapping) if args.livelink else None
    senders = _build_senders(args)
    outputs = [
        Output(s, livelink_mapping if s.kind == "livelink" and livelink_mapping else mapping)
        for s in senders
    ]
    return senders, outputs


def _build_senders(args: argparse.Namespace) -> list[Sender]:
    from bridge.transports.base import parse_host_port
    from bridge.transports.livelink import LIVELINK_PORT, LiveLinkSender
    from bridge.transports.osc import DEFAULT_OSC_PORT, OscSender
    from bridge.transports.zmq import ZmqSender

    senders: list[Sender] = []
    zmq_endpoint = args.zmq
    if zmq_endpoint is None and args.osc is None and args.livelink is None:
        zmq_endpoint = "tcp://127.0.0.1:5555"
    if zmq_endpoint is not None:
        senders.append(ZmqSender(zmq_endpoint, sndhwm=args.zmq_hwm, curve=curve_keys(args)))
    if args.osc is not None:
        host, port = parse_host_port(args.osc, DEFAULT_OSC_PORT)
        senders.append(OscSender(host, port, mode=args.osc_mode))
    if args.livelink is not None:
        host, port = parse_host_port(args.livelink, LIVELINK_PORT)
        senders.append(LiveLinkSender(host, port))
    return senders


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def source_audio_for(baked: str | Path, metadata: dict) -> tuple[Path | None, list[str]]:
    """The audio a bake came from: ``(found, paths tried)``.

    New bakes record an absolute ``source_audio``; older ones a path relative to where they ran,
    so a relative one is tried beside the bake file, then from here; last, audio named like the
    bake beside it (``line.json`` -> ``line.wav``).
    """
    baked = Path(baked)
    candidates: list[Path] = []
    recorded = metadata.get("source_audio")
    if isinstance(recorded, str) and recorded:
        path = Path(recorded)
        candidates += [path] if path.is_absolute() else [baked.parent / path, path]
    candidates += [baked.with_suffix(suffix) for suffix in AUDIO_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate, [str(c) for c in candidates]
    return None, [str(c) for c in candidates[:3]]


def add_output_arguments(p: argparse.ArgumentParser, quiet: str) -> None:
    """``--json`` (a machine-readable summary on stdout; exit codes unchanged) and ``-q``."""
    group = p.add_argument_group("output")
    group.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    group.add_argument("-q", "--quiet", action="store_true", help=quiet)


def finite_or_none(x: float) -> float | None:
    """A number for JSON: NaN (nothing measured) becomes null."""
    import math

    return None if math.isnan(x) else x


def head_scale(text: str) -> float:
    """``--head``: a number within 0..2."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number within 0..2, got {text!r}") from None
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"must be within 0..2, got {text}")
    return value


def add_transcript_arguments(p: argparse.ArgumentParser, *, single_text: bool) -> None:
    """``--text/--text-file``, ``--language``, ``--text-mode``, ``--network-lips``."""
    g = p.add_argument_group(
        "transcript (lips from the line's text: needs espeak-ng, loaded as a separate library)"
    )
    if single_text:
        g.add_argument(
            "--text",
            default=None,
            help="what the line says: its phonemes, aligned to the audio, close the lips on "
            "p/b/m, shape f/v and round u/o/ü (a manifest's text column does this per line)",
        )
        g.add_argument("--text-file", default=None, metavar="FILE", help="--text read from a file")
    g.add_argument(
        "--language",
        default="en",
        metavar="CODE",
        help="espeak-ng language of the text: en, en-us, es, de, fr, ja, cmn, ... (default en)",
    )
    g.add_argument(
        "--text-mode",
        choices=("require", "prefer", "off"),
        default="require",
        help="require: fail without espeak-ng; prefer: warn and use audio-only lips; off: "
        "ignore texts (default require)",
    )
    g.add_argument(
        "--phones",
        action="store_true",
        help="no text: lips from phones recognised in the audio (pocketsphinx's English model; "
        "helps other languages too; needs emoface[phones])",
    )
    g.add_argument(
        "--network-lips",
        action="store_true",
        help="with --engine emoface: enforce the text's closures and f/v on the network's "
        "output (off by default; the procedural engine always uses a text)",
    )


def read_text_argument(args: argparse.Namespace) -> str:
    """The single bake's text from ``--text`` or ``--text-file`` ("" when neither)."""
    from bridge.transcript.prepare import check_text

    if args.text is not None and args.text_file is not None:
        raise ValueError("give --text or --text-file, not both")
    if args.text_file is not None:
        path = Path(args.text_file)
        try:
            size = path.stat().st_size
            if size > 64 * 1024:
                raise ValueError(f"{path}: {size} bytes; a line's text is at most 64 KiB")
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text") from None
        except OSError as e:
            raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
        return check_text(raw, str(path))
    return check_text(args.text or "", "--text")


def lips_from_arguments(args: argparse.Namespace, engine: Any, samples: Any) -> dict[str, Any]:
    """``animate_audio``'s ``transcript`` and ``lip_layer`` for one clip from the CLI's flags.

    Raises:
        EspeakError: a text with ``--text-mode require`` and no espeak-ng.
        PhonesError: ``--phones`` without pocketsphinx.
    """
    from bridge.transcript.prepare import lip_layer_for, lip_source

    text = read_text_argument(args)
    layer = lip_layer_for(engine.name, args.network_lips)
    if text and layer is None and args.text_mode != "off":
        log.warning(
            "the emoface engine ignores the text unless --network-lips is given "
            "(then it enforces the text's closures and f/v)"
        )
    if layer is None:
        return {}
    source = lip_source(text, args.language, args.text_mode, phones=args.phones, samples=samples)
    return {"transcript": source, "lip_layer": layer}


def add_head_argument(p: argparse.ArgumentParser) -> None:
    """``--head``: the head motion layer's scale (``emoface_core.head``)."""
    p.add_argument(
        "--head",
        type=head_scale,
        default=1.0,
        metavar="0..2",
        help="head motion from the speech (nods, turns, tilts): 1 as designed, 0 none; .txt "
        "outputs never carry it (the authors' 174 columns)",
    )
