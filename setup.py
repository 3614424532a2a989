"""Build hook: copy the top-level ``mappings/`` and ``unreal_plugin/`` into the wheel.

They stay the source of truth at the top of the repository (an editable install and the
tests read them there); a built wheel carries copies under ``bridge/_data/`` so that a plain
``pip install .`` can ``stream``, ``serve``, ``mapping list`` and ``unreal install``.
Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = (("mappings", "mappings"), ("unreal_plugin/EmoFaceBridge", "unreal_plugin/EmoFaceBridge"))


class BuildPyWithData(build_py):
    """``build_py`` plus the shared data folders copied into ``bridge/_data``."""

    def run(self) -> None:
        """Build the packages, then copy the data folders next to them."""
        super().run()
        if self.editable_mode:  # an editable install reads the repository's own folders
            return
        target = Path(self.build_lib) / "bridge" / "_data"
        for source, name in DATA:
            destination = target / name
            if destination.exists():
                shutil.rmtree(destination)
            shutil.copytree(
                ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )


setup(cmdclass={"build_py": BuildPyWithData})
