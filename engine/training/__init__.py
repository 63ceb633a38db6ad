"""The training process: the TRL trainer (SFT, DPO, KTO, GRPO), its callbacks, the worker, scale, faults."""
