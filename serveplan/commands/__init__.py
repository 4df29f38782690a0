"""One module per ``serveplan`` subcommand; each exposes ``register(subparsers)``."""
