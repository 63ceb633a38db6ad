"""A sweep on a Slurm cluster: one job array, one array task per run, each on one node.

Like engine/scheduling/slurm.py, the runs' directories must be on storage the nodes and the app's machine
share. Slurm hands each task its GPUs, so the workspace's GPU locks play no part here.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tunedeck.engine.run.atomic_io import write_text_atomic


def sweep_array_script(
    name: str,
    run_dirs: list[Path],
    *,
    gpus_per_task: int,
    partition: str = "",
    time_limit: str = "",
    max_parallel: int = 0,
    python: str | None = None,
) -> str:
    python = python or sys.executable
    dirs = [Path(d).resolve() for d in run_dirs]
    limit = f"%{max_parallel}" if max_parallel > 0 else ""
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=tunedeck-sweep-{name[:40]}",
        f"#SBATCH --array=0-{len(dirs) - 1}{limit}",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus_per_task}",
        "#SBATCH --output=/dev/null",  # each task appends to its own run's engine.log below
    ]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if time_limit:
        lines.append(f"#SBATCH --time={time_limit}")
    lines += [
        "set -euo pipefail",
        "# one run directory per array task, in the sweep's order",
        "RUNS=(",
        *(f"  {shlex.quote(str(d))}" for d in dirs),
        ")",
        'RUN="${RUNS[$SLURM_ARRAY_TASK_ID]}"',
        'exec >>"$RUN/engine.log" 2>&1',
        "export PYTHONUNBUFFERED=1",
    ]
    if gpus_per_task > 1:
        lines.append(
            f"{shlex.quote(python)} -m torch.distributed.run --standalone --nproc-per-node={gpus_per_task} "
            '-m tunedeck.engine.training.worker "$RUN"'
        )
    else:
        lines.append(f'{shlex.quote(python)} -m tunedeck.engine.training.worker "$RUN"')
    lines.append("")
    return "\n".join(lines)


def write_and_submit_array(script: Path, text: str, submit: bool = True) -> str | None:
    """Write the script; submit it when sbatch exists. Returns the array's job id or None."""
    write_text_atomic(script, text, mode=0o700)
    if not submit or shutil.which("sbatch") is None:
        return None
    out = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=True)
    return out.stdout.strip().split(";")[0]
