"""Export one complete checkpoint of a run: the LoRA adapter alone, a standalone merged model, or one GGUF file.

- adapter (default for LoRA/QLoRA runs): adapter_model.safetensors + adapter_config.json in PEFT
  format, copied byte for byte from the checkpoint, with the tokenizer and chat template. Loads with
  PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), OUT).
- merged (--merge): the base loaded unquantised in the checkpoint's precision, the adapter merged in
  (merge_and_unload), saved as safetensors with tokenizer, chat template and generation_config.
  A full fine-tuning run always exports this way: its checkpoint weights on the base's architecture.
- gguf (--gguf TYPE): the merged (or full) model converted by llama.cpp's own converter, with an Ollama
  Modelfile (engine/export/gguf_export.py).
- tunedeck-export.json beside them (engine/export/export_record.py): what was exported, from which run
  and data, the gate's view, and the artifact gate: the exported artifact answers the task examples the
  gate asked the checkpoint (engine/export/artifact_gate.py). An artifact that falls beyond the gate's
  tolerances is a failed export: its files are kept, marked failed (status, EXPORT-FAILED.txt), and the
  result says so (ExportResult.failed; the command exits 1).

Everything is written into a hidden temp directory beside OUT and renamed onto OUT at the end: an export
stopped by Ctrl-C or SIGTERM removes it, and one killed outright leaves `.OUT.tmp-*` behind, never an OUT
that looks whole. Nothing is pickled: weights are safetensors or GGUF, and the written folder is checked
for pickle files before the rename.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from tunedeck.engine.export.export_record import EXPORT_FAILED, EXPORT_RECORD, build_record
from tunedeck.engine.run.checkpoint_choice import CheckpointChoiceError, select_checkpoint
from tunedeck.engine.run.store import Checkpoint

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM}


class ExportError(ValueError):
    """An export that cannot be done as asked (no such checkpoint, OUT not empty); str() says what to do."""


@dataclass
class ExportResult:
    out: Path
    step: int
    kind: str  # "adapter", "merged" (LoRA merged into the base), "full" (full fine-tuning) or "gguf"
    selected_by: str  # why this checkpoint: "step", "chosen", "best" or "latest"
    record: dict
    artifact_gate: object = None  # artifact_gate.ArtifactGate
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """The exported artifact fell beyond the gate's tolerances: kept, marked failed, and not to be shipped."""
        return bool(self.artifact_gate is not None and self.artifact_gate.failed)

    @property
    def gguf_file(self) -> Path | None:
        g = self.record.get("gguf")
        return self.out / g["file"] if g else None


# ---- the output directory ----------------------------------------------------------------------


def check_out(out: Path) -> Path:
    """OUT must not exist, or be an empty directory (the final rename replaces an empty one)."""
    out = Path(out).expanduser().absolute()
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"{out} already exists and is not a directory; choose a new output directory")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(f"{out} already exists and is not empty; choose a new output directory or remove it")
    return out


def _publish(tmp: Path, out: Path) -> None:
    """fsync what was written, then rename the temp directory onto OUT in one step."""
    umask = os.umask(0)
    os.umask(umask)
    for path in sorted(tmp.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(path, 0o666 & ~umask)  # some writers create private files; make them all alike
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it private; an export is meant to be shared like any folder
    try:
        os.rename(tmp, out)
    except OSError as e:  # OUT appeared, or filled up, while the export ran
        raise ExportError(
            f"cannot move the export into {out}: {e.strerror} (did something write there meanwhile?)"
        ) from None
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- writing ---------------------------------------------------------------------------------


def export_precision(profile) -> str:
    """The checkpoint's precision: optim.precision, or for "auto" what training picked on a GPU. On a
    machine without one, the base's own dtype when it is a half type (fp32 would double the size)."""
    from tunedeck.engine.models.model_loading import has_cuda, resolve_precision

    if profile.optim.precision != "auto" or has_cuda():
        return resolve_precision(profile)
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(
            profile.model.base,
            trust_remote_code=profile.model.trust_remote_code,
            **({"revision": profile.model.revision} if profile.model.revision else {}),
        )
        dtype = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "")
    except Exception:
        dtype = ""
    return {"torch.bfloat16": "bf16", "bfloat16": "bf16", "torch.float16": "fp16", "float16": "fp16"}.get(dtype, "fp32")


def load_checkpoint_tokenizer(profile, ckpt: Checkpoint):
    """The tokenizer saved with the checkpoint (the one training used, chat template included), else the base's."""
    from tunedeck.engine.models.model_loading import load_tokenizer

    if not (Path(ckpt.path) / "tokenizer_config.json").exists():
        return load_tokenizer(profile)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(ckpt.path), trust_remote_code=profile.model.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _write_adapter(ckpt: Checkpoint, profile, tmp: Path) -> None:
    src = Path(ckpt.path)
    if not (src / "adapter_model.safetensors").exists():
        raise ExportError(
            f"checkpoint-{ckpt.step} has no adapter_model.safetensors (pickled adapters are not exported)"
        )
    shutil.copyfile(src / "adapter_model.safetensors", tmp / "adapter_model.safetensors")
    config = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
    # PEFT loads the base from these two fields: pin the exact base the run trained on
    config["base_model_name_or_path"] = profile.model.base
    config["revision"] = profile.model.revision or None
    config["inference_mode"] = True
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def merged_model(ckpt: Checkpoint, profile, precision: str, progress):
    from tunedeck.engine.models.model_loading import load_model

    # QLoRA trained against 4-bit weights; a merged model is shipped in the checkpoint's half precision
    plain = (
        replace(profile, method=replace(profile.method, adapter="lora"))
        if profile.method.adapter == "qlora"
        else profile
    )
    progress(f"loading the base model {profile.model.base} ({precision})")
    model = load_model(plain, precision)
    if profile.method.adapter == "none":
        progress(f"loading checkpoint-{ckpt.step} weights")
        return _load_full_weights(model, ckpt)
    import warnings

    from peft import PeftModel

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    progress(f"merging checkpoint-{ckpt.step}'s adapter into the base")
    peft_model = PeftModel.from_pretrained(model, str(ckpt.path), is_trainable=False)
    return peft_model.merge_and_unload(safe_merge=True)  # safe_merge: refuse NaNs instead of shipping them


def _load_full_weights(model, ckpt: Checkpoint):
    """A full fine-tuning checkpoint's weights into the base's architecture, as the gate evaluated them."""
    from safetensors.torch import load_file

    files = sorted(Path(ckpt.path).glob("model*.safetensors"))
    if not files:
        raise ExportError(f"checkpoint-{ckpt.step} has no safetensors weights (pickled weights are not exported)")
    state: dict = {}
    for f in files:
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k}  # tied to the embeddings, not saved separately
    if unexpected or set(missing) - tied:
        raise ExportError(
            f"checkpoint-{ckpt.step}: weights do not fit the base model "
            f"({len(set(missing) - tied)} missing, {len(unexpected)} unexpected tensors)"
        )
    return model


def write_model(model, tokenizer, tmp: Path) -> None:
    from tunedeck.engine.gate.generate import eos_ids

    gc = model.generation_config
    # plain model.generate() must stop where the gate's generations stopped: every end-of-reply token
    stops = sorted(eos_ids(model, tokenizer))
    if stops:
        gc.eos_token_id = stops[0] if len(stops) == 1 else stops
    if gc.pad_token_id is None and tokenizer.pad_token_id is not None:
        gc.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(tmp), max_shard_size="5GB")  # safetensors (the only format transformers 5 writes)


def _hold_for_a_test() -> None:
    """TUNEDECK_TEST_HOLD_EXPORT_UNTIL=FILE: wait here, the files written into the temp directory and before the
    artifact gate and the rename, until FILE exists, so that a test stops an export half-written however fast
    the machine. Production never sets it."""
    hold = os.environ.get("TUNEDECK_TEST_HOLD_EXPORT_UNTIL")
    while hold and not os.path.exists(hold):
        time.sleep(0.05)


def _no_pickles(tmp: Path) -> None:
    found = [p.name for p in tmp.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    if found:
        raise ExportError(f"refusing to publish pickled files ({', '.join(found)}); this is a bug in tunedeck")


# ---- entry point -----------------------------------------------------------------------------


def export_checkpoint(
    run_dir: Path,
    out: Path,
    *,
    checkpoint=None,
    merge: bool = False,
    gguf: str | None = None,
    llama_cpp: str | None = None,
    gate_examples: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export one complete checkpoint of `run_dir` into `out` (absent or empty), then ask the artifact the gate's task
    examples (the first `gate_examples`). Mistakes raise ExportError before any model loads; an artifact beyond the
    gate's tolerances is published, marked failed, and returned with result.failed."""
    from tunedeck.engine.export import artifact_gate as ag
    from tunedeck.engine.run.run_record import load_run_record

    progress = progress or (lambda message: None)
    run_dir = Path(run_dir)
    record = load_run_record(run_dir)
    profile = record.profile
    out = check_out(out)  # mistakes surface before any model loads
    if gate_examples is not None and gate_examples < 1:
        raise ExportError(f"--gate-examples: expected a positive number of examples, got {gate_examples}")
    gguf_type = converter = None
    if gguf:
        from tunedeck.engine.export import gguf_convert, llama_cpp_source

        gguf_type = gguf_convert.parse_gguf_type(gguf)
        gguf_convert.require_packages()
    try:
        ckpt, selected_by = select_checkpoint(run_dir, checkpoint)
    except CheckpointChoiceError as e:
        raise ExportError(str(e)) from None
    kind = "gguf" if gguf_type else "full" if profile.method.adapter == "none" else "merged" if merge else "adapter"
    plan = ag.plan(run_dir, ckpt.step, gate_examples)
    if gguf_type:
        converter = llama_cpp_source.locate(llama_cpp, progress=progress)  # cached, else downloaded once
        gguf_convert.require_quantize(converter, gguf_type)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise ExportError(f"cannot create {out}: {e.strerror}: {e.filename or out.parent}") from None
    try:
        tokenizer = load_checkpoint_tokenizer(profile, ckpt)
        precision, written, warnings = None, None, []
        if kind == "adapter":
            _write_adapter(ckpt, profile, tmp)
        elif kind == "gguf":
            from tunedeck.engine.export.gguf_export import write_gguf

            precision = export_precision(profile)
            written = write_gguf(
                ckpt,
                profile,
                tokenizer,
                tmp,
                gguf_type,
                converter,
                precision,
                run_name=record.name or record.id,
                progress=progress,
            )
            warnings = written.notes
        else:
            precision = export_precision(profile)
            model = merged_model(ckpt, profile, precision, progress)
            progress(f"writing safetensors to {out}")
            write_model(model, tokenizer, tmp)
            del model
        if kind != "gguf":
            tokenizer.save_pretrained(str(tmp))  # tokenizer files and chat_template.jinja
        _no_pickles(tmp)
        _hold_for_a_test()
        gate = ag.run_artifact_gate(
            plan,
            kind,
            tmp,
            profile,
            artifact=ARTIFACT_WORDS[kind].format(type=gguf_type),
            gguf_file=written.file if written else None,
            reference_tokenizer=gate_tokenizer(profile, plan),
            progress=progress,
        )
        if written is not None:
            from tunedeck.engine.export.gguf_export import write_modelfile
            from tunedeck.engine.gate.eval_inputs import gen_settings
            from tunedeck.engine.gate.example_records import read_records

            task_records = [r for r in read_records(run_dir, ckpt.step) if "task" in (r.get("tags") or ())]
            generation = gate.generation or vars(gen_settings(profile))
            write_modelfile(tmp, written, task_records, generation, gate.reasons if gate.failed else [])
        if gate.failed:
            (tmp / EXPORT_FAILED).write_text(
                f"This export of checkpoint-{ckpt.step} failed its artifact gate: it does not answer as the checkpoint "
                "the gate judged.\n"
                + "".join(f"- {r}\n" for r in gate.reasons)
                + f"Details: {EXPORT_RECORD} (artifact_gate).\n",
                encoding="utf-8",
            )
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        data = build_record(
            record,
            ckpt,
            kind,
            selected_by,
            precision,
            files,
            gguf=written.to_record() if written else None,
            artifact_gate=gate.to_dict(),
            warnings=warnings,
        )
        (tmp / EXPORT_RECORD).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        _publish(tmp, out)
    except BaseException as e:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in _DISK_ERRORS:  # the machine's problem, not a bug: say it in one line
            raise ExportError(f"export to {out} failed: {e.strerror}; nothing was written") from None
        raise
    return ExportResult(
        out=out, step=ckpt.step, kind=kind, selected_by=selected_by, record=data, artifact_gate=gate, warnings=warnings
    )


def gate_tokenizer(profile, plan):
    """The tokenizer the gate asked the checkpoint with (the base's, with the profile's chat template), for the
    artifact gate's count of prompts the exported tokenizer splits differently; None when nothing is asked."""
    if plan.skipped:
        return None
    from tunedeck.engine.models.model_loading import load_tokenizer

    return load_tokenizer(profile)


ARTIFACT_WORDS = {
    "adapter": "the exported adapter on its base",
    "merged": "the merged model",
    "full": "the exported model",
    "gguf": "the GGUF file ({type}, through transformers' GGUF loader)",
}


def load_instructions(result: ExportResult) -> str:
    """How to load what was written, as Python a user can paste."""
    base = result.record["base_model"]["id"]
    rev = result.record["base_model"]["revision"]
    if result.kind == "gguf":
        name = result.gguf_file.name
        return (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"model = AutoModelForCausalLM.from_pretrained({str(result.out)!r}, gguf_file={name!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({str(result.out)!r}, gguf_file={name!r})"
        )
    if result.kind == "adapter":
        rev_arg = f", revision={rev!r}" if rev else ""
        return (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "from peft import PeftModel\n"
            f"base = AutoModelForCausalLM.from_pretrained({base!r}{rev_arg})\n"
            f"model = PeftModel.from_pretrained(base, {str(result.out)!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({str(result.out)!r})"
        )
    return (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"model = AutoModelForCausalLM.from_pretrained({str(result.out)!r})\n"
        f"tokenizer = AutoTokenizer.from_pretrained({str(result.out)!r})"
    )
