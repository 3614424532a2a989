"""The ``emoface`` command line: a thin layer over library calls, one module per subcommand.

Each module in ``COMMAND_MODULES`` has ``register(subparsers)``, which adds its parser and sets
``func`` to a function ``(args) -> int``. Heavy imports (torch, transformers) happen inside those
functions, so ``emoface receive`` or ``emoface mapping validate`` start instantly without torch.
The library raises; this module turns any ``EmoFaceError``/``ValueError``/``OSError`` into one
line on stderr and exit code 1 (the traceback only with ``--verbose``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from emoface_core import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "bridge.commands.bake",
    "bridge.commands.dataset",
    "bridge.commands.eval",
    "bridge.commands.train",
    "bridge.commands.stream",
    "bridge.commands.receive",
    "bridge.commands.mapping",
    "bridge.commands.plot",
    "bridge.commands.preview",
    "bridge.commands.serve",
    "bridge.commands.unreal",
    "bridge.commands.live",
    "bridge.commands.distill",
    "bridge.commands.keys",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="emoface",
        description="EmoFace: speech to MetaHuman face animation, baked or streamed live.",
    )
    parser.add_argument("--version", action="version", version=f"emoface {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log more and show tracebacks on errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _accept_verbose_anywhere(subparsers)
    return parser


def _accept_verbose_anywhere(subparsers: argparse._SubParsersAction) -> None:
    """Let ``-v`` also follow a subcommand (``emoface bake x.wav -v``), as users type it."""
    for sub in subparsers.choices.values():
        # SUPPRESS: when absent here, the top-level value stays.
        sub.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_verbose_anywhere(action)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used as the console-script entry point)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):  # bare `emoface`: the overview, as `emoface -h`
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("emoface: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`emoface mapping show ... | head`): not an error to report.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit flush
        return 1
    except (ValueError, OSError, RuntimeError, ImportError) as e:
        if args.verbose:
            traceback.print_exc()
        print(f"emoface: error: {one_line(e)}", file=sys.stderr)
        return 1


def one_line(error: BaseException) -> str:
    """The first line of an error's message, or its type name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
