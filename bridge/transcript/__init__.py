"""Transcripts for lip sync: the text spoken by espeak-ng (``espeak``), prepared per line."""
