"""The hyperparameter form, generated from tunedeck.engine.config.profile_schema.field_specs().

One row per field, grouped by section under SECTION_TITLES: an Input for numbers and strings, a
Select for choices, a Switch for booleans. Every change re-validates: each field on its own (so the
error sits next to the field) and the whole profile with build_profile. Errors block a launch;
hints are shown but never block. trust_remote_code is drawn in red while it is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, get_origin

from rich.markup import escape
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch

from tunedeck.engine.config.profile_hints import hints
from tunedeck.engine.config.profile_loading import ProfileError, build_profile
from tunedeck.engine.config.profile_schema import SECTION_TITLES, FieldSpec, Profile, effective_batch, field_specs

from ..path_suggester import PATH_KEYS, PathSuggester


def field_id(key: str) -> str:
    return "f-" + key.replace(".", "--")


def _is_list(spec: FieldSpec) -> bool:
    return spec.type is list or get_origin(spec.type) is list


def to_text(spec: FieldSpec, value: Any) -> str:
    if spec.tables:  # rewards.checks: a TOML inline array of tables, as a profile writes it
        return _inline_tables(value or [])
    if _is_list(spec) or (spec.many and isinstance(value, list)):
        return ", ".join(value or [])
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def _inline_tables(tables: list[dict]) -> str:
    import tomlkit

    array = tomlkit.array()
    for table in tables:
        inline = tomlkit.inline_table()
        inline.update(table)
        array.append(inline)
    return array.as_string()


def _parse_tables(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {text or '[]'}")["v"]
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f'must be a TOML list of tables, e.g. [{{type = "json_valid", weight = 1.0}}] ({e})') from None


def parse_text(spec: FieldSpec, text: str) -> Any:
    """The typed value of an Input's text; raises ValueError with a short message."""
    text = text.strip()
    if spec.tables:
        return _parse_tables(text)
    if _is_list(spec):
        return [t.strip() for t in text.split(",") if t.strip()]
    if spec.many and "," in text:  # data.path: several files, comma-separated
        parts = [t.strip() for t in text.split(",") if t.strip()]
        return parts if len(parts) > 1 else (parts[0] if parts else "")
    if spec.type is str:
        return text
    if text == "":
        raise ValueError("needs a value")
    for convert in (int, float):
        try:
            value = convert(text.replace("_", ""))
            break
        except ValueError:
            continue
    else:
        raise ValueError(f"must be {'an integer' if spec.type is int else 'a number'}, not {text!r}")
    if spec.type is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


class HyperparamForm(VerticalScroll):
    DEFAULT_CSS = """
    HyperparamForm { height: 1fr; }
    HyperparamForm .form-section { text-style: bold; color: $accent; margin-top: 1; }
    HyperparamForm .form-row { height: auto; }
    HyperparamForm .form-label { width: 24; }
    HyperparamForm .form-row Switch { height: 1; border: none; padding: 0; }
    HyperparamForm .form-row Input, HyperparamForm .form-row Select { width: 1fr; }
    HyperparamForm .form-error { color: $error; height: auto; }
    HyperparamForm .form-error.-empty { display: none; }
    HyperparamForm .danger .form-label, HyperparamForm .danger Switch { color: $error; text-style: bold; }
    HyperparamForm #form-summary { height: auto; padding: 0 1; background: $boost; }
    HyperparamForm #form-help { height: auto; padding: 0 1; color: $text-muted; }
    """

    @dataclass
    class Changed(Message):
        """The form changed: the built profile (None while any field is invalid) and the errors."""

        form: "HyperparamForm"
        profile: Profile | None
        errors: dict[str, str]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.specs = [s for s in field_specs()]
        self.by_key = {s.key: s for s in self.specs}
        self.errors: dict[str, str] = {}
        self.profile: Profile | None = Profile()
        self.description = ""
        self.train_rows: int | None = None
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Static("", id="form-summary")
        yield Static("", id="form-help", markup=False)
        section = None
        for spec in self.specs:
            if spec.section != section:
                section = spec.section
                yield Static(SECTION_TITLES.get(section, section), classes="form-section")
            fid = field_id(spec.key)
            with Horizontal(classes="form-row", id=fid + "-row"):
                yield Label(spec.name, classes="form-label")
                if spec.choices:
                    yield Select(
                        [(str(c), c) for c in spec.choices],
                        value=spec.default,
                        allow_blank=False,
                        id=fid,
                        tooltip=spec.help,
                        compact=True,
                    )
                elif spec.type is bool:
                    yield Switch(value=bool(spec.default), id=fid, tooltip=spec.help)
                else:
                    suggester = PathSuggester(models=spec.key == "model.base") if spec.key in PATH_KEYS else None
                    yield Input(
                        to_text(spec, spec.default),
                        id=fid,
                        tooltip=spec.help,
                        select_on_focus=False,
                        compact=True,
                        suggester=suggester,
                    )
            yield Static("", classes="form-error -empty", id=fid + "-error", markup=False)

    def on_mount(self) -> None:
        self.validate()

    # ---- values -----------------------------------------------------------------------------

    def widget_for(self, key: str):
        return self.query_one("#" + field_id(key))

    def set_profile(self, profile: Profile) -> None:
        """Fill every field from a profile."""
        self._loading = True
        try:
            self.description = profile.description
            data = profile.to_dict()
            for spec in self.specs:
                self.set_value(spec.key, data[spec.section][spec.name], validate=False)
        finally:
            self._loading = False
        self.validate()

    def set_value(self, key: str, value: Any, validate: bool = True) -> None:
        spec, w = self.by_key[key], self.widget_for(key)
        if isinstance(w, Select):
            w.value = value
        elif isinstance(w, Switch):
            w.value = bool(value)
        else:
            w.value = to_text(spec, value)
        if validate:
            self.validate()

    def raw_values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """({key: typed value}, {key: parse error}) from the widgets."""
        values, errors = {}, {}
        for spec in self.specs:
            w = self.widget_for(spec.key)
            if isinstance(w, (Select, Switch)):
                values[spec.key] = w.value
                continue
            try:
                values[spec.key] = parse_text(spec, w.value)
            except ValueError as e:
                errors[spec.key] = f"{spec.key} {e}"
        return values, errors

    def data(self) -> dict:
        values, _ = self.raw_values()
        out: dict = {"description": self.description} if self.description else {}
        for key, value in values.items():
            section, name = key.split(".", 1)
            out.setdefault(section, {})[name] = value
        return out

    # ---- validation -------------------------------------------------------------------------

    def validate(self) -> Profile | None:
        values, errors = self.raw_values()
        for key, value in values.items():
            if key in errors:
                continue
            section, name = key.split(".", 1)
            try:
                build_profile({section: {name: value}})
            except ProfileError as e:
                errors[key] = str(e)
        profile = None
        if not errors:
            try:
                profile = build_profile(self.data())
            except ProfileError as e:
                errors[e.key or "form"] = str(e)
        self.errors, self.profile = errors, profile
        for spec in self.specs:
            box = self.query_one("#" + field_id(spec.key) + "-error", Static)
            msg = errors.get(spec.key, "")
            box.update(msg)
            box.set_class(not msg, "-empty")
        trust = values.get("model.trust_remote_code") is True
        self.query_one("#" + field_id("model.trust_remote_code") + "-row").set_class(trust, "danger")
        self._summary()
        if not self._loading:
            self.post_message(self.Changed(self, profile, dict(errors)))
        return profile

    def hint_list(self) -> list[str]:
        if self.profile is None:
            return []
        return [
            f"{h.key}: {h.message}" for h in hints(self.profile, processes=max(self.profile.resources.processes, 1))
        ]

    def steps_per_epoch(self) -> int | None:
        p = self.profile
        if p is None or self.train_rows is None:
            return None
        procs = max(p.resources.processes, 1)
        samples = self.train_rows * (
            p.method.grpo_num_generations if p.method.method == "grpo" else 1
        )  # GRPO: completions
        batches = math.ceil(samples / (p.optim.batch_size * procs))
        return max(math.ceil(batches / p.optim.grad_accum), 1) if self.train_rows else 0

    def set_train_rows(self, rows: int | None) -> None:
        self.train_rows = rows
        self._summary()

    def _summary(self) -> None:
        lines = []
        p = self.profile
        if p is None:
            lines.append(f"[b red]{len(self.errors)} error(s)[/]: fix them to launch")
        else:
            procs = max(p.resources.processes, 1)
            line = (
                f"effective batch [b]{effective_batch(p, procs)}[/] "
                f"({p.optim.batch_size} x {p.optim.grad_accum} x {procs} proc)"
            )
            spe = self.steps_per_epoch()
            if spe is not None:
                line += f"   steps/epoch [b]{spe}[/] ({self.train_rows} train rows)"
            lines.append(line)
            if p.model.trust_remote_code:
                lines.append("[b red]trust_remote_code is ON: the model's own Python code will run[/]")
            lines += [f"[yellow]hint[/] {escape(h)}" for h in self.hint_list()]
        self.query_one("#form-summary", Static).update("\n".join(lines))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        wid = event.widget.id or ""
        spec = next((s for s in self.specs if field_id(s.key) == wid), None)
        if spec is not None:
            rng = f" [{spec.min:g} .. {spec.max:g}]" if spec.min is not None and spec.max is not None else ""
            self.query_one("#form-help", Static).update(f"{spec.key}{rng}: {spec.help}")

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _changed(self, event: Message) -> None:
        event.stop()
        if not self._loading:
            self.validate()
