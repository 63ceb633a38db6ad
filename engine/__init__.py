"""The headless engine (installed as tunedeck.engine): rooms follow the flow of a run."""
