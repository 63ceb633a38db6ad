"""The issue's acceptance on a real instruct model: the session's SmolLM2 LoRA run (tests/real/conftest.py) exported
with `tunedeck export RUN --gguf q8_0 OUT` writes a GGUF and a Modelfile, and its last lines give the artifact's
task score beside the checkpoint's and the answers identical to the gate's; a chat template broken on purpose
fails the export with the reason. llama.cpp's converter is fetched once per session
(tests/engine/export/test_export_gguf.py)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import tunedeck
from fixtures.gguf_runs import converter_cache, tensor_types

from real.conftest import RUN_STEPS

pytestmark = [pytest.mark.real, pytest.mark.slow]

# SmolLM2's ChatML with the assistant header dropped: the model is asked to go on writing the user's turn
BROKEN_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory, smollm2_lora_run) -> dict:
    # the converter's cache beside the session's; the run's own GGUF base stays in the real tier's cache
    return {"LLAMA_CPP_DIR": "", "XDG_CACHE_HOME": str(converter_cache(tmp_path_factory))}


def _export(run, out, env, *extra):
    return tunedeck(
        "export",
        "--workspace",
        str(run.parent.parent),
        run.name,
        "--checkpoint",
        str(RUN_STEPS),
        "--gguf",
        "q8_0",
        *extra,
        str(out),
        env=env,
        timeout=1800,
    )


def test_a_smollm2_lora_run_exports_to_q8_0_and_answers_as_the_gate_recorded(smollm2_lora_run, env, tmp_path):
    out = tmp_path / "q8"
    proc = _export(smollm2_lora_run, out, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads((out / "tunedeck-export.json").read_text())
    gguf = out / rec["gguf"]["file"]
    assert tensor_types(gguf) == {"Q8_0"} and (out / "Modelfile").exists()
    modelfile = (out / "Modelfile").read_text().splitlines()
    assert f"FROM ./{gguf.name}" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and 'PARAMETER stop "<|im_start|>"' in modelfile
    assert "PARAMETER temperature 0" in modelfile and any(line.startswith('SYSTEM """') for line in modelfile)
    gate = rec["artifact_gate"]
    assert gate["verdict"] == "pass" and gate["examples"] == gate["of"] > 0
    assert gate["identical"] >= gate["examples"] - 2, gate["differences"]
    lines = proc.stdout.strip().splitlines()
    said = re.fullmatch(
        r"artifact task ([\d.]+)% vs checkpoint-\d+ ([\d.]+)%.*; (\d+) of (\d+) answers identical to the "
        r"gate's",
        lines[-2],
    )
    assert said and float(said[1]) == gate["task"] and float(said[2]) == gate["checkpoint_task"], lines[-2]
    assert (int(said[3]), int(said[4])) == (gate["identical"], gate["examples"])
    assert lines[-1] == "artifact gate: pass (within the gate's tolerances)"


def test_a_broken_template_fails_the_smollm2_export_with_the_reason(smollm2_lora_run, env, tmp_path):
    run = shutil.copytree(smollm2_lora_run, tmp_path / "ws" / "runs" / smollm2_lora_run.name)
    (run / "checkpoints" / f"checkpoint-{RUN_STEPS}" / "chat_template.jinja").write_text(BROKEN_TEMPLATE)
    out = tmp_path / "broken"
    proc = _export(run, out, env, "--gate-examples", "8")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tunedeck: error: export failed its artifact gate:" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("artifact gate FAILED: ")
    rec = json.loads((out / "tunedeck-export.json").read_text())
    assert rec["status"] == "failed" and rec["artifact_gate"]["examples"] == 8
    assert rec["artifact_gate"]["tokenized_differently"] == 8 and (out / "EXPORT-FAILED.txt").exists()
