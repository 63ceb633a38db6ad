"""`tunedeck export --gguf` for real: a tiny Llama-architecture checkpoint trained here is merged and converted by
llama.cpp's own converter (fetched once per session from the package index, as a user's machine fetches it) to
f16 and q8_0, read back through transformers' GGUF reader by the artifact gate, and compared with the gate's
recorded answers. A planted drift (a changed chat template) fails the export and keeps it, marked; offline with
no cached converter, the command says what to download and set.

The tiny model's tokenizer is a sentencepiece BPE (llama.cpp's converter identifies a byte-level BPE only by
the hash of a published model's tokenizer, so it refuses engine/tiny_model.py's; a test below shows that
refusal). Its HF form is built the way transformers rebuilds a sentencepiece vocabulary from a GGUF (merges
from the pieces' scores), so a faithful conversion reads back token for token.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import tunedeck
from fixtures.gguf_runs import DRIFTED_TEMPLATE, STEP, cli_env, converter_cache, gguf_run, spm_model, tensor_types
from fixtures.small_runs import no_leftovers

# ---- built once per session, shared with tests/tui/test_app_export.py ----------------------------------


# ---- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return converter_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, sft_data) -> Path:
    return gguf_run(tmp_path_factory, sft_data)


def export(run: Path, *args: str, env: dict):
    return tunedeck("export", "--workspace", str(run.parent.parent), run.name, *args, env=env, timeout=900)


def task_records(run: Path) -> list[dict]:
    from tunedeck.engine.gate.example_records import read_records

    return [r for r in read_records(run, STEP) if "task" in r["tags"]]


# ---- conversions -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_f16_export_reads_back_and_answers_as_the_gate_recorded(run_dir, cache, tmp_path):
    from gguf import GGUFReader

    from tunedeck.engine.data.demo_data import SYSTEM
    from tunedeck.engine.export.llama_cpp_source import PINNED_SHA256

    out = tmp_path / "f16"
    proc = export(run_dir, "--gguf", "f16", str(out), env=cli_env(cache))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    name = f"train-checkpoint-{STEP}-f16.gguf"
    assert sorted(p.name for p in out.iterdir()) == sorted([name, "Modelfile", "tunedeck-export.json"])
    assert tensor_types(out / name) == {"F16"}
    no_leftovers(tmp_path)

    rec = json.loads((out / "tunedeck-export.json").read_text())
    n = len(task_records(run_dir))
    assert rec["kind"] == "gguf" and rec["status"] == "ok" and rec["checkpoint"]["step"] == STEP
    conv = rec["gguf"]["converter"]
    assert (
        rec["gguf"]["type"] == "f16" and conv["converter"] == "convert_hf_to_gguf.py" and rec["gguf"]["convert_s"] > 0
    )
    assert "llama-cpp-python 0.3.36 source distribution" in conv["source"] and conv["sdist_sha256"] == PINNED_SHA256
    assert conv["commit"] == "0c1e57098bba43ac29e6e3b677cdceebdd22334f"
    # transformers 5 saved no tokenizer.model with the checkpoint: the base's went to the converter
    assert rec["gguf"]["tokenizer_model"].endswith("tokenizer.model")
    gate = rec["artifact_gate"]
    assert (gate["examples"], gate["of"], gate["verdict"]) == (n, n, "pass") and n >= 15
    assert gate["identical"] == n and gate["task"] == gate["checkpoint_task"] and gate["format"] == 100.0
    assert gate["tokenized_differently"] == 0 and gate["generation"]["temperature"] == 0.0

    # the GGUF carries the checkpoint's template and real sentencepiece scores (not llama.cpp's -1000 placeholder)
    fields = GGUFReader(str(out / name)).fields
    template = (run_dir / "checkpoints" / f"checkpoint-{STEP}" / "chat_template.jinja").read_text()
    assert fields["tokenizer.chat_template"].contents() == template
    assert len(set(fields["tokenizer.ggml.scores"].contents())) > 100

    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{name}\n")
    for line in (
        "PARAMETER temperature 0",
        "PARAMETER num_predict 32",
        'PARAMETER stop "<|im_end|>"',
        'PARAMETER stop "<|im_start|>"',
        f'SYSTEM """{SYSTEM}"""',
    ):
        assert line in modelfile.splitlines(), modelfile
    lines = proc.stdout.strip().splitlines()
    assert f"ollama create train-checkpoint-{STEP}-f16 -f {out / 'Modelfile'}" in proc.stdout
    assert lines[-2] == (
        f"artifact task 0.0% vs checkpoint-{STEP} 0.0%, format 100.0% vs 100.0%; "
        f"{n} of {n} answers identical to the gate's"
    )
    assert lines[-1] == "artifact gate: pass (within the gate's tolerances)"


@pytest.mark.slow
def test_q8_0_export_of_the_first_examples_through_a_named_llama_cpp_directory(run_dir, cache, tmp_path, monkeypatch):
    from tunedeck.engine.export.checkpoint_export import export_checkpoint
    from tunedeck.engine.export.llama_cpp_source import PINNED_VERSION

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))  # the named directory, not the cache
    llama_cpp = cache / "tunedeck" / f"llama.cpp-{PINNED_VERSION}"
    result = export_checkpoint(run_dir, tmp_path / "q8", gguf="Q8_0", llama_cpp=str(llama_cpp), gate_examples=8)
    assert (result.kind, result.failed) == ("gguf", False)
    assert tensor_types(result.gguf_file) == {"Q8_0"}
    conv = result.record["gguf"]["converter"]
    assert conv["source"].startswith(f"llama.cpp directory {llama_cpp}") and conv["gguf_py"] == "0.19.0"
    gate = result.artifact_gate
    assert (gate.examples, gate.of) == (8, len(task_records(run_dir)))
    assert gate.verdict == "pass" and gate.checkpoint_format == 100.0 and gate.format >= 90.0
    assert 0 <= gate.identical <= 8 and result.record["artifact_gate"]["identical"] == gate.identical
    assert not (tmp_path / "no-cache").exists()


@pytest.mark.slow
def test_a_changed_chat_template_fails_the_export_and_keeps_it_marked(run_dir, cache, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "ws" / "runs" / run_dir.name)
    (run / "checkpoints" / f"checkpoint-{STEP}" / "chat_template.jinja").write_text(
        DRIFTED_TEMPLATE
    )  # the planted drift
    out = tmp_path / "drifted"
    proc = export(run, "--gguf", "q8_0", str(out), env=cli_env(cache))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("tunedeck: error:")]
    assert len(err) == 1 and "export failed its artifact gate: format validity" in err[0] and str(out) in err[0]
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.strip().splitlines()
    n = len(task_records(run))
    assert lines[-1].startswith("artifact gate FAILED: format validity ") and "max_format_drop" in lines[-1]
    assert (
        f"{n} of {n} prompts are tokenized differently by the exported tokenizer (its chat template or "
        "vocabulary) than by the one the gate used" in proc.stdout
    )
    assert "not imported into Ollama: the export failed its artifact gate" in proc.stdout

    # kept, and marked failed where a person and a script look
    name = f"train-checkpoint-{STEP}-q8_0.gguf"
    assert {name, "Modelfile", "tunedeck-export.json", "EXPORT-FAILED.txt"} == {p.name for p in out.iterdir()}
    rec = json.loads((out / "tunedeck-export.json").read_text())
    assert rec["status"] == "failed" and rec["artifact_gate"]["verdict"] == "fail"
    assert rec["artifact_gate"]["format"] < rec["artifact_gate"]["checkpoint_format"] - 10
    assert rec["artifact_gate"]["differences"][0]["gate"] != rec["artifact_gate"]["differences"][0]["artifact"]
    assert (out / "Modelfile").read_text().startswith("# tunedeck: THIS EXPORT FAILED ITS ARTIFACT GATE")
    assert "format validity" in (out / "EXPORT-FAILED.txt").read_text()
    no_leftovers(tmp_path)


@pytest.mark.slow
def test_a_k_quant_goes_through_llama_quantize_where_a_build_is_found(run_dir, cache, tmp_path):
    """Runs where LLAMA_CPP_DIR names a llama.cpp build with llama-quantize (or it is on PATH); CI has none."""
    from tunedeck.engine.export.llama_cpp_source import ENV_DIR, find_quantize, from_directory

    named = os.environ.get(ENV_DIR)
    if (from_directory(named, ENV_DIR).quantize if named else find_quantize(None)) is None:
        pytest.skip("no llama-quantize here (build llama.cpp and set LLAMA_CPP_DIR to its checkout)")
    out = tmp_path / "q4"
    proc = export(run_dir, "--gguf", "q4_k_m", str(out), env={"XDG_CACHE_HOME": str(cache)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads((out / "tunedeck-export.json").read_text())
    assert rec["gguf"]["quantize_s"] > 0 and rec["gguf"]["converter"]["quantize"].endswith("llama-quantize")
    # the tiny model's rows (128 wide) are below the 256-wide K-quant blocks: llama-quantize falls back per tensor
    assert tensor_types(out / rec["gguf"]["file"]) - {"F16", "Q8_0", "Q4_0", "Q5_0", "Q5_1", "Q4_K", "Q6_K"} == set()
    assert not (out / f"train-checkpoint-{STEP}-q4_k_m.f16-intermediate.gguf").exists()
    assert rec["artifact_gate"]["verdict"] == "pass" and rec["artifact_gate"]["examples"] > 0


# ---- refusals before any model loads -----------------------------------------------------------------


def offline_env(tmp_path: Path) -> dict:
    """No converter anywhere and a package index that refuses connections: a machine without network."""
    (tmp_path / "no-links").mkdir(exist_ok=True)
    return {
        "XDG_CACHE_HOME": str(tmp_path / "empty-cache"),
        "LLAMA_CPP_DIR": "",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple/",
        "PIP_FIND_LINKS": str(tmp_path / "no-links"),
        "PIP_NO_CACHE_DIR": "1",
    }


@pytest.mark.slow
def test_offline_without_a_cached_converter_says_what_to_download_and_set(run_dir, tmp_path):
    from tunedeck.engine.export.llama_cpp_source import PINNED_SHA256, SDIST

    out = tmp_path / "offline"
    proc = export(run_dir, "--gguf", "q8_0", str(out), env=offline_env(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "tunedeck: error: llama.cpp's converter is not cached and pip could not download it "
        "(the package index could not be reached: [Errno 111] Connection refused)"
    ), last
    for needed in (
        SDIST,
        PINNED_SHA256,
        "--llama-cpp llama_cpp_python-0.3.36/vendor/llama.cpp",
        "LLAMA_CPP_DIR",
        "pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36",
    ):
        assert needed in last
    assert "Traceback" not in proc.stderr and "loading the base model" not in proc.stderr
    assert not out.exists() and not (tmp_path / "empty-cache" / "tunedeck" / "llama.cpp-0.3.36").exists()
    no_leftovers(tmp_path)


@pytest.mark.slow
def test_what_cannot_be_written_is_refused_with_what_it_needs(run_dir, cache, tmp_path):
    def refused(*args: str, env: dict | None = None) -> str:
        proc = export(run_dir, *args, str(tmp_path / "out"), env=env or {**cli_env(cache), "PATH": os.defpath})
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("tunedeck: error: ") and "Traceback" not in proc.stderr
        assert "loading the base model" not in proc.stderr
        return lines[-1]

    assert (
        "tunedeck writes f16, bf16, q8_0 (llama.cpp's converter) and q4_k_m, q5_k_m, q6_k (llama-quantize)"
        in refused("--gguf", "q3_k_s")
    )
    said = refused("--gguf", "q4_k_m")  # the pinned converter has no llama-quantize build, and PATH has none
    assert "--gguf q4_k_m needs llama.cpp's llama-quantize" in said and "--llama-cpp DIR" in said
    assert f"{tmp_path / 'nowhere'} is not a directory" in refused(
        "--gguf", "f16", "--llama-cpp", str(tmp_path / "nowhere")
    )
    assert "add --gguf TYPE" in refused("--ollama-create")
    assert "add --gguf TYPE" in refused("--ollama-name", "mine")
    assert "`ollama` is not on PATH" in refused("--gguf", "f16", "--ollama-create")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_tokenizer_the_converter_cannot_identify_is_refused_before_the_merge(
    tiny_model_dir, sft_data, cache, tmp_path
):
    """engine/tiny_model.py's byte-level BPE is no published model's: the converter's --vocab-only probe says so."""
    ws = tmp_path / "ws"
    proc = tunedeck(
        "run",
        "lora",
        "--workspace",
        str(ws),
        "--data",
        str(sft_data),
        "--set",
        f"model.base={tiny_model_dir}",
        "--set",
        "optim.max_steps=2",
        "--set",
        "checkpoints.save_steps=2",
        "--set",
        "gate.when=never",
        "--set",
        "optim.precision=fp32",
        check=True,
    )
    run = ws / "runs" / proc.stdout.strip().splitlines()[0]
    proc = export(run, "--gguf", "f16", str(tmp_path / "out"), env=cli_env(cache))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "does not recognise this model's tokenizer" in last and "--llama-cpp DIR" in last, last
    assert "checking that llama.cpp's converter accepts" in proc.stderr and "merging" not in proc.stderr
    assert not (tmp_path / "out").exists()
    no_leftovers(tmp_path)


@pytest.mark.slow
def test_a_full_finetuning_run_converts_as_it_is(tmp_path_factory, sft_data, cache, tmp_path, demo_rows):
    from fixtures.small_runs import checkpoint_texts
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedeck.engine.gate.generate import generate

    ws = tmp_path / "ws"
    proc = tunedeck(
        "run",
        "full",
        "--workspace",
        str(ws),
        "--data",
        str(sft_data),
        "--set",
        f"model.base={spm_model(tmp_path_factory)}",
        "--set",
        "optim.max_steps=4",
        "--set",
        "checkpoints.save_steps=4",
        "--set",
        "gate.when=never",
        "--set",
        "optim.precision=fp32",
        "--set",
        "optim.learning_rate=1e-3",
        check=True,
    )
    run = ws / "runs" / proc.stdout.strip().splitlines()[0]
    out = tmp_path / "full"
    proc = export(run, "--gguf", "f16", str(out), env=cli_env(cache))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "merging" not in proc.stderr and "loading checkpoint-4 weights" in proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == (
        "artifact gate: not run: the gate has not evaluated checkpoint-4, so "
        f"there is nothing to compare with (run `tunedeck eval {run.name} "
        "--checkpoint 4`)"
    )
    rec = json.loads((out / "tunedeck-export.json").read_text())
    assert rec["adapter"] == "none" and rec["artifact_gate"]["skipped"] and rec["status"] == "ok"
    name = rec["gguf"]["file"]
    prompts = [r["messages"][:-1] for r in demo_rows[-4:]]
    model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=name)
    tokenizer = AutoTokenizer.from_pretrained(str(out), gguf_file=name)
    said = [g.text for g in generate(model, tokenizer, prompts, max_new_tokens=24, batch_size=4)]
    assert said == checkpoint_texts(run, 4, prompts)  # the checkpoint as the gate loads it, 24 tokens each


# ---- the Modelfile's text ------------------------------------------------------------------------------


def test_modelfile_quotes_stops_and_says_a_failure_first():
    from tunedeck.engine.export.modelfile import modelfile_text, ollama_name, system_prompt

    text = modelfile_text(
        "m.gguf",
        stops=["<|im_end|>", 'say "x"\\'],
        system="Be brief.",
        generation={"temperature": 0.7, "top_p": 0.9, "seed": 3, "max_new_tokens": 64},
        failed=["task dropped"],
    )
    lines = text.splitlines()
    assert lines[0].startswith("# tunedeck: THIS EXPORT FAILED") and lines[1] == "#   task dropped"
    assert "FROM ./m.gguf" in lines and 'PARAMETER stop "say \\"x\\"\\\\"' in lines
    assert {
        "PARAMETER temperature 0.7",
        "PARAMETER top_p 0.9",
        "PARAMETER seed 3",
        "PARAMETER num_predict 64",
        'SYSTEM """Be brief."""',
    } <= set(lines)
    assert "PARAMETER top_p" not in modelfile_text("m.gguf", stops=[], system=None, generation={"temperature": 0})
    assert ollama_name("My Run/2", 40, "q8_0") == "my-run-2-checkpoint-40-q8_0"
    recs = [{"prompt": [{"role": "system", "content": "A"}, {"role": "user", "content": "u"}]}] * 3 + [
        {"prompt": [{"role": "user", "content": "u"}], "system_prompt": "B"}
    ]
    assert system_prompt(recs) == (
        "A",
        "the gate's 4 task examples were asked with 2 different system prompts; this is the most common (3 of 4)",
    )
