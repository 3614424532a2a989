"""The clocked loops that release frames in real time (stream, serve, live)."""
