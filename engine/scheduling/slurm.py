"""Several nodes on a Slurm cluster: an sbatch script that starts torchrun on every node.

The run directory must be on storage every node and the app's machine share; rank 0 (first node)
writes it, and readers on other hosts judge liveness by the heartbeat, not the pid.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tunedeck.engine.run.atomic_io import write_text_atomic

SCRIPT_NAME = "slurm.sbatch"


def sbatch_script(
    run_dir: Path,
    *,
    nodes: int,
    gpus_per_node: int,
    resume: bool = False,
    partition: str = "",
    time_limit: str = "",
    python: str | None = None,
    port: int = 29500,
) -> str:
    run_dir = Path(run_dir).resolve()
    python = python or sys.executable
    worker = f"-m tunedeck.engine.training.worker {shlex.quote(str(run_dir))}" + (" --resume" if resume else "")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=tunedeck-{run_dir.name[:40]}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus_per_node}",
        f"#SBATCH --output={run_dir}/engine.log",
        "#SBATCH --open-mode=append",
    ]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if time_limit:
        lines.append(f"#SBATCH --time={time_limit}")
    lines += [
        "set -euo pipefail",
        "# rendezvous on the first node of the allocation",
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "export PYTHONUNBUFFERED=1",
        f"srun --kill-on-bad-exit=1 {shlex.quote(python)} -m torch.distributed.run \\",
        f'  --nnodes="$SLURM_NNODES" --nproc-per-node={gpus_per_node} \\',
        '  --rdzv-id="$SLURM_JOB_ID" --rdzv-backend=c10d \\',
        f'  --rdzv-endpoint="$MASTER_ADDR:{port}" \\',
        f"  {worker}",
        "",
    ]
    return "\n".join(lines)


def write_and_submit(
    run_dir: Path,
    *,
    nodes: int,
    gpus_per_node: int,
    resume: bool = False,
    submit: bool = True,
    partition: str = "",
    time_limit: str = "",
) -> tuple[Path, str | None]:
    """Write <run>/slurm.sbatch; submit it when sbatch exists. Returns (script, job id or None)."""
    script = Path(run_dir) / SCRIPT_NAME
    write_text_atomic(
        script,
        sbatch_script(
            run_dir, nodes=nodes, gpus_per_node=gpus_per_node, resume=resume, partition=partition, time_limit=time_limit
        ),
        mode=0o700,
    )
    if not submit or shutil.which("sbatch") is None:
        return script, None
    out = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=True)
    return script, out.stdout.strip().split(";")[0]
