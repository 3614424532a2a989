"""The NPC dialogue service (emoface serve) and its client."""
