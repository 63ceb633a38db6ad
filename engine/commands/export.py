"""`tunedeck export RUN [--checkpoint N|best|chosen|latest] [--merge | --gguf TYPE] OUT`: ship one checkpoint.

The last lines are the artifact gate's: the exported artifact's task score beside the checkpoint's on the
gate's task examples, and how many answers are identical to the gate's. An artifact beyond the gate's
tolerances is a failed export: the output is kept and marked failed, and the command exits 1.
"""

from __future__ import annotations

import os
import signal
import sys

from tunedeck.engine.config.workspace import resolve_workspace
from tunedeck.engine.run.store import find_run

EXIT_FAILED_EXPORT = (
    1  # written, but it does not answer as the checkpoint the gate judged (2: refused, nothing written)
)


def cmd_export(args) -> int:
    from tunedeck.engine.commands.errors import UserError
    from tunedeck.engine.export import modelfile as mf
    from tunedeck.engine.export.artifact_gate import summary_lines
    from tunedeck.engine.export.checkpoint_export import export_checkpoint, load_instructions

    run_dir = find_run(resolve_workspace(args.workspace), args.run)
    if (args.ollama_create or args.ollama_name) and not args.gguf:
        raise UserError("--ollama-create imports a GGUF into Ollama: add --gguf TYPE (e.g. --gguf q8_0)")
    if args.ollama_create and not mf.ollama_available():
        raise UserError(
            "--ollama-create: `ollama` is not on PATH; install Ollama (https://ollama.com) or drop the flag "
            "and run the printed `ollama create` line where Ollama is"
        )
    # transformers' per-tensor progress bars (and the GGUF reader's plain tqdm bar) would bury the lines that matter
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:
        pass
    # `kill PID`, or the app's stop: leave like Ctrl-C, removing the half-written folder. SIGINT alone is not
    # enough: a process started in the background of a script inherits SIGINT ignored (bash does that).
    signal.signal(signal.SIGTERM, _stopped)
    result = export_checkpoint(
        run_dir,
        args.out,
        checkpoint=args.checkpoint,
        merge=args.merge,
        gguf=args.gguf,
        llama_cpp=args.llama_cpp,
        gate_examples=args.gate_examples,
        progress=_say,
    )
    why = {
        "chosen": " (the chosen checkpoint)",
        "best": " (the gate's best checkpoint)",
        "latest": " (the latest complete checkpoint)",
    }.get(result.selected_by, "")
    rec = result.record
    what = {
        "adapter": "LoRA adapter (PEFT format)",
        "merged": "merged model (safetensors)",
        "full": "full fine-tuned model (safetensors)",
        "gguf": f"GGUF ({(rec.get('gguf') or {}).get('type')})",
    }[result.kind]
    gate = rec.get("gate") or {}
    print(f"exported checkpoint-{result.step}{why} of {run_dir.name} as a {what} to {result.out}")
    if result.kind == "gguf":
        conv = rec["gguf"]["converter"]
        commit = f", llama.cpp {conv['commit'][:12]}" if conv.get("commit") else ""
        quantized = (
            f", quantized by {conv['quantize']} in {rec['gguf']['quantize_s']:.1f} s"
            if rec["gguf"].get("quantize_s") is not None
            else ""
        )
        print(
            f"converted by llama.cpp's {conv['converter']} ({conv['source']}{commit}) "
            f"in {rec['gguf']['convert_s']:.1f} s" + quantized
        )
    for warning in result.warnings:
        print(f"warning: {warning}")
    if gate.get("verdict"):
        print(f"gate verdict for checkpoint-{result.step}: {gate['verdict']}")
    elif gate:
        print(f"gate: checkpoint-{result.step} was not evaluated by the gate")
    if result.kind == "gguf":
        _ollama_lines(result, args.ollama_create, args.ollama_name, run_dir.name)
    else:
        print("load it with:")
        for line in load_instructions(result).splitlines():
            print(f"    {line}")
    for line in summary_lines(result.artifact_gate, result.step):
        print(line)
    if result.failed:
        sys.stdout.flush()
        print(
            "tunedeck: error: export failed its artifact gate: "
            f"{'; '.join(result.artifact_gate.reasons)}; the output is "
            f"kept in {result.out}, marked failed (EXPORT-FAILED.txt, tunedeck-export.json status)",
            file=sys.stderr,
        )
        return EXIT_FAILED_EXPORT
    return 0


def _ollama_lines(result, create: bool, name: str | None, run_name: str) -> None:
    from tunedeck.engine.export import modelfile as mf

    name = name or mf.ollama_name(result.record.get("run_name") or run_name, result.step, result.record["gguf"]["type"])
    modelfile = result.out / mf.MODELFILE
    line = " ".join(mf.create_command(name, modelfile))
    if result.failed:
        print(f"not imported into Ollama: the export failed its artifact gate ({modelfile} says so at its top)")
        return
    if not create:
        print("import it into Ollama with:")
        print(f"    {line}")
        print(f"    ollama run {name}")
        return
    _say(f"running {line}")
    code, last = mf.run_ollama_create(name, modelfile)
    if code == 0:
        print(f"imported into Ollama as {name}: ollama run {name}")
    else:
        print(f"ollama create failed ({last or f'exit {code}'}); run it yourself: {line}")


def _stopped(signum, frame) -> None:
    raise KeyboardInterrupt  # the CLI says "interrupted" and exits 130; export_checkpoint removes its temp folder


def _say(message: str) -> None:
    """A progress line; a closed stderr (the reader went away) must not abort the export."""
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass


def _positive(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of examples, got {text!r}")
    return n


def register(subparsers) -> None:
    desc = (
        "export a complete checkpoint: the LoRA adapter (PEFT format), with --merge a standalone model in "
        "safetensors, or with --gguf TYPE one GGUF file and an Ollama Modelfile; with a tunedeck-export.json "
        "record. The exported artifact then answers the gate's task examples for that checkpoint, and a "
        "score that falls beyond the gate's tolerances fails the export (exit 1, output kept and marked failed)"
    )
    p = subparsers.add_parser("export", help=desc, description=desc)
    p.add_argument("--workspace", help="workspace directory (default: $TUNEDECK_WORKSPACE or ~/.local/share/tunedeck)")
    p.add_argument("run", help="run id, unique id prefix, name or directory")
    p.add_argument("out", metavar="OUT", help="output directory: must not exist yet, or be empty")
    p.add_argument(
        "--checkpoint",
        metavar="N|best|chosen|latest",
        help="which checkpoint (default: the chosen one, else the gate's best, else the latest complete)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="merge the adapter into the base and write a standalone model (full fine-tuning runs always do)",
    )
    p.add_argument(
        "--gguf",
        metavar="TYPE",
        help="write one GGUF file with llama.cpp's converter: f16, bf16, q8_0; q4_k_m, q5_k_m, q6_k need "
        "llama-quantize (--llama-cpp DIR). LoRA runs are merged first",
    )
    p.add_argument(
        "--llama-cpp",
        metavar="DIR",
        dest="llama_cpp",
        help="a llama.cpp checkout for --gguf (its converter, and its llama-quantize build); default "
        "$LLAMA_CPP_DIR, else llama.cpp as vendored in llama-cpp-python's source distribution, "
        "downloaded once and cached",
    )
    p.add_argument(
        "--gate-examples",
        metavar="N",
        type=_positive,
        dest="gate_examples",
        help="the artifact gate asks only the first N of the gate's task examples (default: all)",
    )
    p.add_argument(
        "--ollama-create",
        action="store_true",
        dest="ollama_create",
        help="after a GGUF export that passes its artifact gate, run `ollama create NAME -f Modelfile`",
    )
    p.add_argument(
        "--ollama-name",
        metavar="NAME",
        dest="ollama_name",
        help="the Ollama model name (default: <run>-checkpoint-<N>-<type>)",
    )
    p.set_defaults(func=cmd_export)
