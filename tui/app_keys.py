"""The app's own keys, active on every screen: the app binds them and the key list (`?`) shows them."""

from __future__ import annotations

from textual.binding import Binding

APP_BINDINGS = [
    Binding("q", "quit", "Quit", tooltip="Quit the app; engines keep running", id="app.quit"),
    Binding("question_mark", "help", "Keys", key_display="?", tooltip="List every key", id="app.help"),
    Binding("ctrl+t", "change_theme", "Theme", show=False, tooltip="Choose a colour theme", id="app.theme"),
]
