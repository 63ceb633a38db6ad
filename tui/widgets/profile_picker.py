"""The profile picker: shipped and user profiles from profile_search_path(), one line each, and
below the list what the highlighted profile changes relative to the profile it extends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tunedeck.engine.config.profile_loading import (
    SHIPPED_PROFILES,
    ProfileError,
    load_profile_data,
    profile_search_path,
)

from ..profile_saving import diff_against_parent, parent_of


@dataclass
class ProfileEntry:
    name: str
    path: Path
    description: str
    shipped: bool
    parent: str | None


def list_profiles(workspace: Path | None = None) -> list[ProfileEntry]:
    """Every profile on the search path; a name found twice is the first one (the one `extends` finds)."""
    seen: dict[str, ProfileEntry] = {}
    for d in profile_search_path(workspace):
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.toml")):
            if path.stem in seen:
                continue
            try:
                desc = str(load_profile_data(path, workspace).get("description", ""))
            except ProfileError as e:
                desc = f"(broken: {e})"
            seen[path.stem] = ProfileEntry(
                path.stem, path.resolve(), desc, d.resolve() == SHIPPED_PROFILES.resolve(), parent_of(path)
            )
    return list(seen.values())


class ProfilePicker(Vertical):
    DEFAULT_CSS = """
    ProfilePicker { height: auto; max-height: 50%; }
    ProfilePicker OptionList { height: auto; max-height: 12; }
    ProfilePicker #profile-diff { height: auto; max-height: 12; padding: 0 1; color: $text-muted; }
    """

    @dataclass
    class Picked(Message):
        picker: "ProfilePicker"
        entry: ProfileEntry

    def __init__(self, workspace: Path | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.entries: list[ProfileEntry] = []

    def compose(self) -> ComposeResult:
        yield OptionList(id="profile-list")
        yield Static("", id="profile-diff")

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.entries = list_profiles(self.workspace)
        ol = self.query_one(OptionList)
        ol.clear_options()
        for e in self.entries:
            where = "shipped" if e.shipped else "user"
            text = f"[b]{escape(e.name)}[/] [dim]{where}[/]  {escape(e.description)}"
            ol.add_option(Option(text, id=e.name))
        if self.entries:
            ol.highlighted = 0

    def entry(self, name: str) -> ProfileEntry | None:
        return next((e for e in self.entries if e.name == name), None)

    def pick(self, name: str) -> None:
        e = self.entry(name)
        if e is not None:
            self.query_one(OptionList).highlighted = self.entries.index(e)
            self.post_message(self.Picked(self, e))

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        e = self.entry(event.option.id or "")
        box = self.query_one("#profile-diff", Static)
        if e is None:
            box.update("")
            return
        if not e.parent:
            box.update(f"{escape(e.name)}: extends nothing (defaults)")
            return
        try:
            lines = diff_against_parent(e.path, self.workspace)
        except ProfileError as err:
            box.update(f"[red]{escape(str(err))}[/]")
            return
        body = "\n".join(escape(line) for line in lines) or "(no changes)"
        box.update(f"[b]{escape(e.name)}[/] changes vs [b]{escape(e.parent)}[/]:\n{body}")

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        e = self.entry(event.option.id or "")
        if e is not None:
            self.post_message(self.Picked(self, e))
