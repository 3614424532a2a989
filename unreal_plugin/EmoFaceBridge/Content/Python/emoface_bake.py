"""Bake a folder of EmoFace files into assets without clicking: run by Unreal with arguments.

AnimSequences only (no Sequencer needed), in the commandlet::

    UnrealEditor-Cmd MyGame.uproject -run=pythonscript -script=".../emoface_bake.py --input D:/lines
        --anim-only --skeleton /Game/MetaHumans/Common/Face/Face_Archetype_Skeleton"

Level Sequences key the face control rig through Sequencer, which needs the editor UI, so run
the full editor unattended and let the script quit it::

    UnrealEditor MyGame.uproject -ExecutePythonScript=".../emoface_bake.py --input D:/lines
        --map /Game/Maps/Dialogue --actor BP_Ada --anim --quit"

(each command on one line).

Give the script's full path (``.../Plugins/EmoFaceBridge/Content/Python/emoface_bake.py``);
``emoface unreal install`` prints it. Unreal does not pass the exit status back: look for lines
starting with "FAILED" in the log.
"""

from __future__ import annotations

import argparse
import sys

from emoface_unreal.settings import KEY_STRATEGIES


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (mirror ``BakeSettings``)."""
    p = argparse.ArgumentParser(prog="emoface_bake.py", description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="folder of .json/.txt files, or one file")
    p.add_argument("--output", default="/Game/EmoFace/Baked", help="content folder for the assets")
    p.add_argument("--map", default="", help="level to load first (holds the MetaHuman)")
    p.add_argument("--actor", default="", help="MetaHuman actor label bound in Level Sequences")
    p.add_argument("--anim", action="store_true", help="also make AnimSequences with curves")
    p.add_argument(
        "--anim-only", action="store_true", help="only AnimSequences (no Sequencer needed)"
    )
    p.add_argument("--skeleton", default="", help="face skeleton asset for AnimSequences")
    p.add_argument("--audio-folder", default="", help="folder of audio named like the files")
    p.add_argument("--replace", action="store_true", help="overwrite existing assets")
    p.add_argument("--txt-fps", type=float, default=60.0, help="frame rate of .txt files")
    p.add_argument("--key-strategy", default="channels", choices=KEY_STRATEGIES)
    p.add_argument("--face-rig", default="", help="face control rig asset (default: MetaHuman's)")
    p.add_argument("--flip-jaw-y", action="store_true", help="key the jaw's Y negated")
    p.add_argument("--quit", action="store_true", help="quit the editor when done")
    return p


def main(argv: list[str]) -> int:
    """Bake; returns 0 when every file baked, 1 when some failed, 2 for bad arguments."""
    import unreal
    from emoface_unreal.editor.bake import bake_folder
    from emoface_unreal.settings import BakeSettings

    args = build_parser().parse_args(argv)
    try:
        settings = BakeSettings(
            input_folder=args.input,
            output_path=args.output,
            actor=args.actor,
            level_sequence=not args.anim_only,
            anim_sequence=args.anim or args.anim_only,
            face_skeleton=args.skeleton,
            audio_folder=args.audio_folder,
            replace_existing=args.replace,
            txt_fps=args.txt_fps,
            key_strategy=args.key_strategy,
            face_rig_asset=args.face_rig,
            flip_jaw_y=args.flip_jaw_y,
        )
    except ValueError as e:
        print(f"emoface_bake: error: {e}")
        return 2
    if args.map and not unreal.get_editor_subsystem(unreal.LevelEditorSubsystem).load_level(
        args.map
    ):
        print(f"emoface_bake: error: cannot load level {args.map}")
        return 2
    report = bake_folder(settings, undoable=False)  # nobody is there to undo
    print(report.summary())
    if args.quit:
        unreal.SystemLibrary.quit_editor()
    return 1 if report.n_failed else 0


if __name__ == "__main__":
    main(sys.argv[1:])
