"""The command palette (ctrl+p) offers every action: each key binding active on the current screen,
`?`, and "Open run ..." for every run in the workspace. Theme, screenshot and quit come from
Textual's own system commands."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ActionCommands(Provider):
    def _commands(self) -> list[tuple[str, str, object]]:
        screen = self.screen
        out: list[tuple[str, str, object]] = []
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            if b.system or not b.id or not b.description or not active.enabled or b.action in seen:
                continue  # only tunedeck's own bindings (they all carry an id)
            seen.add(b.action)
            key_display = self.app.get_key_display(b)
            out.append(
                (b.tooltip or b.description, f"key: {key_display}", partial(self.app.run_action, b.action, active.node))
            )
        out.sort(key=lambda c: c[0])
        app = self.app
        try:
            from tunedeck.engine.run.store import list_runs

            run_ids = sorted((d.name for d in list_runs(app.workspace)), reverse=True)  # type: ignore[attr-defined]
        except Exception:
            run_ids = list(getattr(app, "known_runs", []))
        for run_id in run_ids[:200]:
            out.append((f"Open run {run_id}", "show its monitor", partial(app.open_run_by_id, run_id)))
        return out

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)  # type: ignore[arg-type]
