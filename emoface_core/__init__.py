"""EmoFace core: audio in, 174 MetaHuman face-board controller values per frame out (60 fps)."""

__version__ = "0.1.0"
