"""Run EmoFace > Diagnose without clicking, e.g. on a build machine or for a bug report.

The diagnosis needs editor ticks (a pose shows a tick after it is evaluated), so it runs in the
full editor, unattended, not in the ``-run=pythonscript`` commandlet::

    UnrealEditor MyGame.uproject -unattended -ExecutePythonScript=".../emoface_diagnose.py
        --map /Game/Maps/Dialogue --actor BP_Ada --quit"

(one line). The report's path is printed and logged (``Saved/EmoFace/diagnose-*.json/.txt``).
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="emoface_diagnose.py", description=__doc__.splitlines()[0])
    p.add_argument("--map", default="", help="level to load first (holds the MetaHuman)")
    p.add_argument("--actor", default="", help="MetaHuman actor label (default: the selected one)")
    p.add_argument("--quit", action="store_true", help="quit the editor when the report is written")
    return p


def main(argv: list[str]) -> int:
    """Start the diagnosis; returns 2 for bad arguments (the report comes over the next ticks)."""
    import unreal
    from emoface_unreal.editor import diagnose

    args = build_parser().parse_args(argv)
    if args.map and not unreal.get_editor_subsystem(unreal.LevelEditorSubsystem).load_level(
        args.map
    ):
        print(f"emoface_diagnose: error: cannot load level {args.map}")
        return 2

    def done(path: object) -> None:
        print(f"emoface_diagnose: report: {path}" if path else "emoface_diagnose: no report")
        if args.quit:
            unreal.SystemLibrary.quit_editor()

    diagnose.start(args.actor, on_done=done)
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
