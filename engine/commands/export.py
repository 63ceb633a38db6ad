"""`tunedeck export RUN [--checkpoint N|best|chosen|latest] [--merge] OUT`: ship one checkpoint."""

from __future__ import annotations

import sys

from tunedeck.engine.run.store import find_run, resolve_workspace


def cmd_export(args) -> int:
    from tunedeck.engine.export.checkpoint_export import export_checkpoint, load_instructions

    run_dir = find_run(resolve_workspace(args.workspace), args.run)
    # transformers' per-tensor progress bars would bury the few lines that matter
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:
        pass
    result = export_checkpoint(run_dir, args.out, checkpoint=args.checkpoint, merge=args.merge, progress=_say)
    why = {"chosen": " (the chosen checkpoint)", "best": " (the gate's best checkpoint)",
           "latest": " (the latest complete checkpoint)"}.get(result.selected_by, "")
    what = {"adapter": "LoRA adapter (PEFT format)", "merged": "merged model (safetensors)",
            "full": "full fine-tuned model (safetensors)"}[result.kind]
    gate = result.record.get("gate") or {}
    print(f"exported checkpoint-{result.step}{why} of {run_dir.name} as a {what} to {result.out}")
    if gate.get("verdict"):
        print(f"gate verdict for checkpoint-{result.step}: {gate['verdict']}")
    elif gate:
        print(f"gate: checkpoint-{result.step} was not evaluated by the gate")
    print("load it with:")
    for line in load_instructions(result).splitlines():
        print(f"    {line}")
    return 0


def _say(message: str) -> None:
    """A progress line; a closed stderr (the reader went away) must not abort the export."""
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass


def register(subparsers) -> None:
    desc = ("export a complete checkpoint: the LoRA adapter (PEFT format), or with --merge a standalone model in "
            "safetensors; with the tokenizer, chat template and a tunedeck-export.json record")
    p = subparsers.add_parser("export", help=desc, description=desc)
    p.add_argument("--workspace", help="workspace directory (default: $TUNEDECK_WORKSPACE or ~/.local/share/tunedeck)")
    p.add_argument("run", help="run id, unique id prefix, name or directory")
    p.add_argument("out", metavar="OUT", help="output directory: must not exist yet, or be empty")
    p.add_argument("--checkpoint", metavar="N|best|chosen|latest",
                   help="which checkpoint (default: the chosen one, else the gate's best, else the latest complete)")
    p.add_argument("--merge", action="store_true",
                   help="merge the adapter into the base and write a standalone model (full fine-tuning runs always do)")
    p.set_defaults(func=cmd_export)

