"""An evaluation's progress, from the "gate" events `tunedeck eval` writes to events.jsonl.

phase "start" names the checkpoints and the number of examples; "progress" (at most once a second)
says how far generation is on one model ("base" or "checkpoint-N"); "row" marks a model scored;
"summary" (with the sentence) ends it. An evaluation that ends without a summary failed: its reason
is in eval.log.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalProgress:
    checkpoints: list = field(default_factory=list)
    examples: int | None = None
    scored: list = field(default_factory=list)  # "base" and steps, in the order they finished
    stage: str | None = None  # the model generating now
    done: int = 0
    total: int = 0
    started: bool = False
    finished: bool = False
    sentence: str | None = None
    joined_late: bool = False  # no "start" seen: the number of models is unknown

    def add(self, ev: dict) -> None:
        if ev.get("kind") != "gate":
            return
        phase = ev.get("phase")
        if phase == "start":
            self.__init__()  # a new evaluation starts over
            self.started = True
            self.checkpoints = list(ev.get("checkpoints") or [])
            self.examples = ev.get("examples") if isinstance(ev.get("examples"), int) else None
        elif phase == "progress":
            if not self.started:  # joined mid-way (the screen opened during an evaluation)
                self.started, self.joined_late = True, True
            self.stage = str(ev.get("stage") or "")
            self.done = int(ev.get("done") or 0)
            self.total = int(ev.get("total") or 0)
        elif phase == "row" and self.started and ev.get("checkpoint") is not None:
            self.scored.append(ev["checkpoint"])
        elif phase == "summary" or ev.get("sentence"):
            if self.started:
                self.finished = True
                self.sentence = str(ev.get("sentence") or "")

    @property
    def models(self) -> int:
        return len(self.checkpoints) + 1  # the base model is always scored (its generations may be cached)

    def describe(self) -> str:
        if not self.started:
            return "evaluation starting: loading the eval sets and the model…"
        if self.finished:
            return f"evaluation finished: {self.sentence}" if self.sentence else "evaluation finished"
        what = self.stage or "base"
        if self.joined_late:
            return f"evaluating {what}: {self.done}/{self.total} generated"
        n = min(len(self.scored) + 1, self.models)
        line = f"evaluating {what} ({n} of {self.models} models"
        line += f", {self.examples} examples each)" if self.examples else ")"
        if self.total:
            line += f": {self.done}/{self.total} generated"
        return line
