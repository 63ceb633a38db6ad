"""An Ollama Modelfile beside an exported .gguf, and the `ollama create` line that imports it.

FROM the file (a path relative to the Modelfile, which Ollama resolves from the Modelfile's folder), a
`stop` for each token that ends or opens a turn in the model's chat template (so Ollama stops where the
gate's generations stopped), the system prompt the gate's task examples were asked with, and the gate's
generation settings (greedy is temperature 0). No TEMPLATE: Ollama takes the chat template the GGUF
carries (tokenizer.chat_template), the one the artifact gate was asked through.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

MODELFILE = "Modelfile"
_SAMPLE = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "U"},
    {"role": "assistant", "content": "A"},
    {"role": "user", "content": "V"},
]


def stop_tokens(tokenizer, eos_ids: set[int]) -> list[str]:
    """The end-of-reply tokens, and every special token the template writes around turns (a model that goes on
    past its reply opens a new turn with one of them; SmolLM2's turn opener is also its BOS)."""
    found = [tokenizer.convert_ids_to_tokens(i) for i in sorted(eos_ids)]
    template_text = ""
    for messages in (_SAMPLE, _SAMPLE[1:]):  # some templates refuse a system turn
        try:
            template_text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            break
        except Exception:
            continue
    specials = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    found += [t for t in specials if t and t in template_text]
    return [t for t in dict.fromkeys(found) if isinstance(t, str) and t]


def system_prompt(records: list[dict]) -> tuple[str | None, str | None]:
    """(the system prompt the gate's task examples were asked with, a note when they were not all asked with one)."""

    from tunedeck.engine.gate.base_prompts import system_turn

    def one(rec: dict) -> str | None:
        if rec.get("system_prompt"):
            return rec["system_prompt"]
        prompt = rec.get("prompt")
        return system_turn(prompt) if isinstance(prompt, list) else None

    counts = Counter(one(r) for r in records)
    if not counts:
        return None, None
    text, n = counts.most_common(1)[0]
    note = (
        None
        if len(counts) == 1
        else (
            f"the gate's {len(records)} task examples were asked with {len(counts)} different "
            f"system prompts; this is the most common ({n} of {len(records)})"
        )
    )
    return text, note


def _quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def modelfile_text(
    gguf_name: str,
    *,
    stops: list[str],
    system: str | None,
    generation: dict,
    notes: list[str] = (),
    failed: list[str] = (),
) -> str:
    lines = []
    if failed:
        lines += [
            "# tunedeck: THIS EXPORT FAILED ITS ARTIFACT GATE; it does not answer as the checkpoint the gate judged:"
        ]
        lines += [f"#   {r}" for r in failed]
    lines += [f"# tunedeck: {n}" for n in notes]
    lines += [f"FROM ./{gguf_name}", ""]
    temperature = float(generation.get("temperature") or 0.0)
    lines.append(f"PARAMETER temperature {temperature:g}")  # 0: greedy, as the gate generated
    if temperature > 0:
        lines.append(f"PARAMETER top_p {float(generation.get('top_p', 1.0)):g}")
        lines.append(f"PARAMETER seed {int(generation.get('seed', 0))}")
    if generation.get("max_new_tokens"):
        lines.append(f"PARAMETER num_predict {int(generation['max_new_tokens'])}")
    lines += [f"PARAMETER stop {_quoted(s)}" for s in stops]
    if system:
        if '"""' in system:
            lines += [
                "",
                "# the gate's system prompt holds three double quotes, which a Modelfile cannot; "
                "set it with /set system",
            ]
        else:
            lines += ["", f'SYSTEM """{system}"""']
    return "\n".join(lines) + "\n"


def ollama_name(run_name: str, step: int, gguf_type: str) -> str:
    """A model name Ollama accepts: lowercase letters, digits, '.', '-', '_'."""
    stem = re.sub(r"[^a-z0-9._-]+", "-", run_name.lower()).strip("-._") or "tunedeck"
    return f"{stem}-checkpoint-{step}-{gguf_type}"


def create_command(name: str, modelfile: Path) -> list[str]:
    return ["ollama", "create", name, "-f", str(modelfile)]


def ollama_available() -> bool:
    return shutil.which("ollama") is not None


def run_ollama_create(name: str, modelfile: Path) -> tuple[int, str]:
    """(exit code, its last line) of `ollama create NAME -f Modelfile`."""
    try:
        proc = subprocess.run(
            create_command(name, modelfile),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=3600,
            cwd=str(modelfile.parent),
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return 1, str(e)
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return proc.returncode, lines[-1] if lines else ""
