"""Training and evaluation of the EmoFace network on an actor's data."""
