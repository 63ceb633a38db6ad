"""Nothing tunedeck does opens the machine to others or runs code from a file a user points at."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from conftest import ROOT, tunedeck, wait_for

from tunedeck.engine.config.profile_schema import Profile
from tunedeck.engine.run import contract as C
from tunedeck.engine.run.store import find_run, read_effective_status


def _modes(root: Path):
    for p in [root, *root.rglob("*")]:
        yield p, stat.S_IMODE(p.stat().st_mode)


@pytest.mark.slow
def test_run_files_are_private_and_no_socket_listens(workspace, tiny_model_dir, sft_data):
    import psutil

    args = [
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        "optim.max_steps=200",
        "--set",
        "checkpoints.save_steps=5",
        "--set",
        "optim.precision=fp32",
        "--set",
        "gate.when=never",
        "--detach",
    ]
    run = find_run(workspace, tunedeck(*args, env={"TUNEDECK_TEST_SLOW_STEP_S": "0.05"}, check=True).stdout.split()[0])
    wait_for(
        lambda: (run / "checkpoints" / "checkpoint-5" / C.CHECKPOINT_MARKER).exists(), timeout=120, what="a checkpoint"
    )
    pid = read_effective_status(run).pid
    proc = psutil.Process(pid)
    listening = [
        c
        for p in [proc, *proc.children(recursive=True)]
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening == []
    tunedeck("stop", run.name, "--wait", check=True)
    for path, mode in _modes(workspace):
        if path.is_dir():
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
        else:
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


@pytest.mark.slow  # it starts an engine
def test_pickled_weights_are_refused(tmp_path, tiny_model_dir, sft_data, workspace):
    import shutil

    import torch
    from safetensors.torch import load_file

    bin_only = tmp_path / "bin-model"
    shutil.copytree(tiny_model_dir, bin_only)
    weights = load_file(bin_only / "model.safetensors")
    (bin_only / "model.safetensors").unlink()
    torch.save(weights, bin_only / "pytorch_model.bin")
    proc = tunedeck(
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--set",
        f"model.base={bin_only}",
        "--set",
        "optim.max_steps=2",
        "--set",
        "gate.when=never",
    )
    assert proc.returncode == 1
    run = find_run(workspace, proc.stdout.split()[0])
    assert "does not load pickled .bin weights" in (run / C.ENGINE_LOG).read_text()


def test_no_unsafe_torch_load_in_our_code():
    offenders = []
    for path in [*ROOT.glob("engine/*.py"), *ROOT.glob("tui/**/*.py")]:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"torch\.load\(", line) and "weights_only=True" not in line:
                offenders.append(f"{path.name}:{lineno}")
            if re.search(r"\bpickle\.loads?\(", line):
                offenders.append(f"{path.name}:{lineno}")
    assert offenders == []


def test_trust_remote_code_is_off_unless_asked():
    assert Profile().model.trust_remote_code is False
    from tunedeck.engine.config.profile_loading import load_profile

    for name in ("lora", "lora-domain", "qlora", "full", "dpo", "demo-cpu"):
        assert load_profile(name).model.trust_remote_code is False


def test_run_names_cannot_escape_the_workspace(workspace, tiny_model_dir, sft_data, tmp_path):
    for name in ("../../escape", "/etc/passwd", "a/../../b", "..", "\x00evil"):
        from tunedeck.engine.run.store import create_run_dir

        run = create_run_dir(workspace, name)
        assert run.resolve().parent == (workspace / "runs").resolve()
