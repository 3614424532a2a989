"""EmoFace core: audio in, 174 MetaHuman face-board controller values per frame out (60 fps).

Pure "audio -> frames -> files" (docs/architecture.md); ``tests/test_layers.py`` enforces:

* R1: nothing here imports ``bridge``.
* R2: no sockets, zmq, threads, queues, processes, Ray, sounddevice or argparse; the one
  subprocess is ffmpeg in ``viz/preview.py``.
* R3: ``engines/neural`` and ``engines/procedural`` import only ``engines/base``, ``audio``,
  ``emotion``, ``controllers``, ``errors`` and ``formats``, never each other; ``animate`` and
  ``streaming`` see only ``engines/base``; ``training/`` and ``viz/`` sit on top; nothing in the
  product imports ``testing/``.
"""

__version__ = "0.1.0"
