"""One module per ``emoface`` subcommand; each has ``register(subparsers)``."""
