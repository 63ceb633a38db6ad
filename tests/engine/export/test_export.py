"""`tunedeck export` on real tiny runs: what it writes loads with plain transformers/PEFT and answers as
the checkpoint did; the record says where it came from; user mistakes are one-line refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, tunedeck, wait_for
from fixtures.small_runs import checkpoint_texts, half_written, no_leftovers, texts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(small_lora_run) -> Path:
    return small_lora_run.parent.parent


@pytest.fixture(scope="module")
def lora_run(small_lora_run) -> Path:
    return small_lora_run  # conftest's, shared with the playground tests: copied before anything writes into it


@pytest.fixture(scope="module")
def full_run(small_full_run) -> Path:
    return small_full_run


@pytest.fixture(scope="module")
def prompts(demo_rows) -> list:
    return [r["messages"][:-1] for r in demo_rows[-4:]]  # the reply is what the model should write


def export(ws: Path, *args: str):
    return tunedeck("export", "--workspace", str(ws), *args)


def assert_refused(proc, *words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tunedeck: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_adapter_export_loads_with_peft_and_answers_like_the_checkpoint(
    ws, lora_run, tiny_model_dir, tmp_path, prompts
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    proc = export(ws, lora_run.name, str(out))  # no gate yet: the latest complete checkpoint
    assert proc.returncode == 0, proc.stderr
    assert "checkpoint-6 (the latest complete checkpoint)" in proc.stdout and "PeftModel.from_pretrained" in proc.stdout
    assert (
        proc.stdout.strip()
        .splitlines()[-1]
        .startswith("artifact gate: not run: the gate has not evaluated checkpoint-6")
    )
    names = {p.name for p in out.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "tunedeck-export.json",
    } <= names
    assert not names & {"optimizer.pt", "rng_state.pth", "training_args.bin", "scheduler.pt"}
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)
    no_leftovers(tmp_path)

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(out))
    assert texts(model, out, prompts) == checkpoint_texts(lora_run, 6, prompts)


def test_merged_export_loads_with_transformers_and_answers_like_the_checkpoint(
    lora_run, tiny_model_dir, tmp_path, prompts
):
    from transformers import AutoModelForCausalLM

    from tunedeck.engine.export.checkpoint_export import export_checkpoint

    out = tmp_path / "merged"
    result = export_checkpoint(lora_run, out, checkpoint=3, merge=True)
    assert (result.step, result.kind, result.selected_by) == (3, "merged", "step")
    names = {p.name for p in out.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "chat_template.jinja",
    } <= names
    assert not any(n.endswith((".bin", ".pt", ".pth")) or n.startswith("adapter_") for n in names)

    model = AutoModelForCausalLM.from_pretrained(str(out))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert any(not (a == b).all() for a, b in zip(model.state_dict().values(), base.state_dict().values())), (
        "the merge changed no weight"
    )
    assert texts(model, out, prompts) == checkpoint_texts(lora_run, 3, prompts)


def test_full_finetune_export_loads_with_transformers(full_run, tmp_path, prompts):
    from transformers import AutoModelForCausalLM

    from tunedeck.engine.export.checkpoint_export import export_checkpoint

    out = tmp_path / "full"
    result = export_checkpoint(full_run, out, checkpoint="latest")  # no --merge needed: it is the whole model
    assert (result.step, result.kind) == (6, "full")
    record = json.loads((out / "tunedeck-export.json").read_text())
    assert record["kind"] == "full" and record["adapter"] == "none" and "lora" not in record["hyperparameters"]
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert texts(model, out, prompts) == checkpoint_texts(full_run, 6, prompts)


def test_record_carries_run_data_hyperparameters_and_gate(lora_run, tiny_model_dir, sft_data, tmp_path):
    from tunedeck.engine.export.checkpoint_export import export_checkpoint
    from tunedeck.engine.gate.rebuild import set_chosen
    from tunedeck.engine.gate.runner import run_gate
    from tunedeck.engine.run.gate_result import read_gate_summary
    from tunedeck.engine.run.run_record import VERSION, load_run_record

    run = shutil.copytree(lora_run, tmp_path / "ws" / "runs" / lora_run.name)  # the gate writes into the run
    run_gate(run)
    summary = read_gate_summary(run)
    best = summary.best
    assert best in (3, 6), summary.sentence

    result = export_checkpoint(run, tmp_path / "best")  # the gate's best, with nothing chosen
    assert (result.step, result.selected_by) == (best, "best")
    set_chosen(run, 3, note="shorter answers")
    result = export_checkpoint(run, tmp_path / "chosen")  # a person's choice outranks the gate's
    assert (result.step, result.selected_by) == (3, "chosen")

    rec = json.loads((tmp_path / "chosen" / "tunedeck-export.json").read_text())
    run_record = load_run_record(run)
    assert rec["run_id"] == run_record.id == lora_run.name
    assert rec["checkpoint"]["step"] == 3 and rec["checkpoint"]["selected_by"] == "chosen"
    assert isinstance(rec["checkpoint"]["eval_loss"], float)
    assert rec["base_model"] == {"id": str(tiny_model_dir), "revision": None}
    assert rec["adapter"] == "lora" and rec["kind"] == "adapter"
    assert rec["dataset"]["path"] == str(sft_data) and rec["dataset"]["fingerprint"] == run_record.dataset_fingerprint
    assert rec["dataset"]["fingerprint"].startswith("sha256:")
    assert rec["hyperparameters"]["optim"]["learning_rate"] == 3e-3 and rec["hyperparameters"]["lora"]["r"] == 8
    gate = rec["gate"]
    assert gate["row"]["checkpoint"] == 3 and gate["verdict"] == gate["row"]["verdict"] == "pass"
    assert gate["best"] == best and gate["chosen"]["checkpoint"] == 3 and gate["sentence"] == summary.sentence
    assert rec["tunedeck_version"] == VERSION and rec["created"] > 0
    assert rec["files"]["adapter_model.safetensors"] > 0
    # the exported adapter answered the gate's task examples for checkpoint-3 as the gate recorded them
    from tunedeck.engine.gate.example_records import read_records

    n = len([r for r in read_records(run, 3) if "task" in r["tags"]])
    artifact = rec["artifact_gate"]
    assert n > 0 and (artifact["examples"], artifact["identical"], artifact["verdict"]) == (n, n, "pass")
    assert artifact["task"] == artifact["checkpoint_task"] == gate["row"]["task"] and rec["status"] == "ok"


def test_refusals_are_one_line_with_exit_code_2(ws, lora_run, tmp_path):
    run = shutil.copytree(lora_run, tmp_path / "ws" / "runs" / lora_run.name)
    ws2 = tmp_path / "ws"
    (run / "checkpoints" / "checkpoint-6" / "tunedeck-complete.json").unlink()  # as if killed mid-save

    assert_refused(export(ws2, run.name, "--checkpoint", "6", str(tmp_path / "a")), "checkpoint-6 is incomplete", "3")
    assert_refused(export(ws2, run.name, "--checkpoint", "999", str(tmp_path / "a")), "checkpoint-999 does not exist")
    assert_refused(export(ws2, run.name, "--checkpoint", "newest", str(tmp_path / "a")), "--checkpoint")
    assert_refused(export(ws2, run.name, "--checkpoint", "best", str(tmp_path / "a")), "tunedeck eval")
    assert_refused(export(ws2, "no-such-run", str(tmp_path / "a")), "no-such-run")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert_refused(export(ws2, run.name, str(taken)), "not empty")
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "a").exists()
    no_leftovers(tmp_path)

    # the latest *complete* checkpoint is the default once the newest lost its marker; an empty OUT is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = export(ws2, run.name, str(empty))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((empty / "tunedeck-export.json").read_text())["checkpoint"]["step"] == 3


def test_an_interrupted_export_leaves_no_output(lora_run, tmp_path):
    from tunedeck.engine.export.checkpoint_export import export_checkpoint

    def interrupt(message: str) -> None:
        if message.startswith("merging"):
            raise KeyboardInterrupt

    out = tmp_path / "merged"
    with pytest.raises(KeyboardInterrupt):
        export_checkpoint(lora_run, out, checkpoint=3, merge=True, progress=interrupt)
    assert not out.exists()
    no_leftovers(tmp_path)


def test_a_terminated_export_removes_its_half_written_folder(ws, lora_run, tmp_path):
    """`kill PID` (and the app's stop) is a Ctrl-C: the export leaves nothing, and says so in one line."""
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunedeck.tui.cli", "export", "--workspace", str(ws), lora_run.name, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TUNEDECK_TEST_HOLD_EXPORT_UNTIL": str(tmp_path / "never")},
        cwd=ROOT,
    )
    try:
        wait_for(lambda: half_written(out), 180, what="the export to write into its temp folder")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "tunedeck: interrupted", stderr
    assert "Traceback" not in stderr and not out.exists()
    no_leftovers(tmp_path)
