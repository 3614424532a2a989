"""EmoFace for Unreal Editor: drive MetaHuman faces live from the bridge and bake animation files.

Standard library only, for the editor's embedded Python (3.11). Modules at this level never
import ``unreal`` (tests import them outside the editor); everything that touches the editor
lives in ``emoface_unreal.editor`` and imports ``unreal`` inside its functions.

Editor entry points (also on the "EmoFace" menu)::

    import emoface_unreal.editor.live as live
    live.start()          # receive with the saved settings and drive the bound MetaHumans
    live.stop()
    print(live.status_text())

    import emoface_unreal.editor.bake as bake
    bake.bake_folder(bake.BakeSettings(input_folder="D:/lines", actor="BP_Ada"))
"""

__version__ = "0.1.0"
