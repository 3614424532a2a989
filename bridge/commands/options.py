"""Pieces every subcommand's parser shares: the help formatter and argument validators."""

from __future__ import annotations

import argparse
import textwrap


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
