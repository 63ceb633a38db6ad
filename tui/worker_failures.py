"""Worker failures go to one place. Worker.StateChanged does not bubble, so every screen mixes in
RoutesWorkerFailures, which hands the event to the app's single router (TunedeckApp.route_worker_failure)."""

from __future__ import annotations

from textual.worker import Worker


class RoutesWorkerFailures:
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.route_worker_failure(event)  # type: ignore[attr-defined]
