"""EmoFace bridge: rig mappings, the frame protocol, real-time transports and the CLI."""
