"""Training: profiles, model loading, the trainer and its callbacks, the worker, launch, queue and scale."""
