"""Run by Unreal at editor start (plugin Content/Python is on sys.path): add the EmoFace menu.

Kept tiny on purpose: a failure here must never stop the editor from starting.
"""

import logging


def _register() -> None:
    try:
        from emoface_unreal.editor import menu

        menu.register_menus()
    except Exception:
        logging.getLogger("emoface_unreal").exception("EmoFace: could not add the EmoFace menu")


_register()
