"""The checkpoints screen's keys (README: the checkpoints screen), apart from the screen as the app's are
(tui/app_keys.py): one place to read what each key does."""

from textual.binding import Binding

CHECKPOINTS_BINDINGS = [
    Binding("escape", "back", "Back", tooltip="Back to the run monitor", id="checkpoints.back"),
    Binding(
        "enter",
        "details",
        "Details",
        tooltip="Per-example results of the selected checkpoint against the base",
        id="checkpoints.details",
    ),
    Binding(
        "e",
        "evaluate",
        "Evaluate",
        tooltip="Run the eval gate on the selected checkpoint (on the base row: all)",
        id="checkpoints.evaluate",
    ),
    Binding(
        "E",
        "evaluate_all",
        "Eval all",
        show=False,
        tooltip="Run the eval gate on every complete checkpoint",
        id="checkpoints.evaluate_all",
    ),
    Binding(
        "r",
        "review",
        "Review",
        tooltip="Label the sampled failures of the selected checkpoint",
        id="checkpoints.review",
    ),
    Binding(
        "b",
        "choose",
        "Choose",
        tooltip="Mark the selected checkpoint as the one to ship (again: unmark)",
        id="checkpoints.choose",
    ),
    Binding(
        "c",
        "compare",
        "Compare",
        tooltip="Compare two checkpoints example by example: c on one, then c on the other",
        id="checkpoints.compare",
    ),
    Binding(
        "p",
        "playground",
        "Playground",
        tooltip="Ask the base model and the selected checkpoint your own prompts",
        id="checkpoints.playground",
    ),
    Binding(
        "x",
        "export",
        "Export",
        tooltip="Export the selected checkpoint: adapter or merged model",
        id="checkpoints.export",
    ),
    Binding(
        "d",
        "delete",
        "Delete",
        tooltip="Delete the selected checkpoint's folder (asks; never the chosen or best)",
        id="checkpoints.delete",
    ),
    Binding(
        "R",
        "rules",
        "Rules",
        show=False,
        tooltip="Edit the gate's rules and re-judge every checkpoint (no retraining)",
        id="checkpoints.rules",
    ),
    Binding(
        "N",
        "next_run",
        "Next run",
        show=False,
        tooltip="The next run from this one: its settings, its data plus its fixes, what changed shown before launch",
        id="checkpoints.next_run",
    ),
    Binding(
        "f5",
        "reload",
        "Reload",
        show=False,
        tooltip="Read the checkpoints and gate results again",
        id="checkpoints.reload",
    ),
]
