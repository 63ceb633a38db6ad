"""A row-cursor table with vim keys. j/k live here, on lists only, never while an input has focus."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable


def _width(value) -> int:
    return cell_len(value.plain if isinstance(value, Text) else str(value))


class ListTable(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, tooltip="Next row", id="list.down"),
        Binding("k", "cursor_up", "Up", show=False, tooltip="Previous row", id="list.up"),
        Binding("g", "scroll_top", "First", show=False, tooltip="First row", id="list.first"),
        Binding("G", "scroll_bottom", "Last", show=False, tooltip="Last row", id="list.last"),
    ]

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)
        self._widths: dict[str, int] = {}

    def show(self, columns: tuple[tuple[str, str], ...], rows: list[tuple[str, dict]]) -> None:
        """Show rows (key, {column key: cell}) in place, keeping the cursor on the same row key.

        Column widths are measured here and set explicitly (a width change rebuilds the columns):
        DataTable's own auto-width is measured later, on idle, and its render caches could keep the
        earlier widths, which showed as cut-off cells."""
        widths = {key: max([_width(label)] + [_width(cells[key]) for _, cells in rows]) for key, label in columns}
        keys = [key for key, _ in rows]
        selected = self.selected_key
        if widths != self._widths:
            self._widths = widths
            self.clear(columns=True)
            for key, label in columns:
                self.add_column(label, key=key, width=widths[key])
        elif keys == [rk.value for rk in self.rows]:
            for row_key, cells in rows:
                for col, value in cells.items():
                    if self.get_cell(row_key, col) != value:
                        self.update_cell(row_key, col, value)
            return
        else:
            self.clear()
        for row_key, cells in rows:
            self.add_row(*(cells[k] for k, _ in columns), key=row_key)
        if selected in keys:
            self.move_cursor(row=keys.index(selected), animate=False)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None
