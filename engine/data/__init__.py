"""Data: sources and layouts to canonical rows, validation, split, masks and tokens, duplicates, versions."""
