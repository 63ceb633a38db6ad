"""Path completion for the form's file fields: local files and folders, and for model.base the models
already in the Hugging Face cache. Textual shows the completion greyed after the cursor; right
arrow (or end) takes it. In data.path, a comma-separated list, the part after the last comma completes.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual.suggester import Suggester

PATH_KEYS = (
    "data.path",
    "data.eval_file",
    "model.base",
    "model.chat_template",
    "gate.golden",
    "gate.safety",
    "gate.general",
)
MAX_ENTRIES = 5000  # a huge folder is cut short rather than read whole on each key press


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def cached_models(cache: Path | None = None) -> list[str]:
    """Hub ids of the models in the cache ("models--org--name" folders), sorted."""
    try:
        names = [e.name for e in os.scandir(cache or hf_cache_dir()) if e.is_dir() and e.name.startswith("models--")]
    except OSError:
        return []
    return sorted(n[len("models--") :].replace("--", "/") for n in names)


def complete_path(text: str) -> str | None:
    """`text` completed to the first file or folder (folders end in /) it is the start of."""
    if not text:
        return None
    full = os.path.expanduser(text)
    folder, start = os.path.split(full)
    try:
        entries = []
        with os.scandir(folder or ".") as it:
            for i, e in enumerate(it):
                if i >= MAX_ENTRIES:
                    break
                if e.name.startswith(start) and (start.startswith(".") or not e.name.startswith(".")):
                    entries.append((e.name, e.is_dir()))
    except OSError:
        return None
    entries = [e for e in sorted(entries) if e[0] != start or e[1]]
    if not entries:
        return None
    name, is_dir = entries[0]
    done = text + name[len(start) :] + ("/" if is_dir else "")
    return done if done != text else None


class PathSuggester(Suggester):
    def __init__(self, models: bool = False) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.models = models

    async def get_suggestion(self, value: str) -> str | None:
        cut = value.rfind(",") + 1  # data.path lists: complete the last item
        head, part = value[:cut], value[cut:]
        item = part.lstrip()
        lead = part[: len(part) - len(item)]
        done = complete_path(item)
        if done is None and self.models and item and not item.startswith(("/", ".", "~")):
            done = next((m for m in cached_models() if m.startswith(item) and m != item), None)
        return head + lead + done if done else None
