"""Profiles: the typed schema, loading with `extends` and `--set`, hints, the next run's profile. Depends on nothing."""
