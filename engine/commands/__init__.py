"""The command line: the engine's only entry points, one module per command."""
