"""Before and around a run: the pre-flight, launching engines, the run queue, sweeps, Slurm, the memory estimate."""
