"""Watching runs from outside the run directory: telemetry (NVML, psutil), experiment trackers, the notify command."""
