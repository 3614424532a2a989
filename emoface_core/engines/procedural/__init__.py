"""The procedural engine: lip sync and expressions from the audio itself, no weights."""
