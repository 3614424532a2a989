"""The EmoFace network as an engine: config, model, checkpoints, inference, streaming."""
