"""The engine's EventReader, reading at most a chunk at a time.

A run with a million logged steps has a large events.jsonl; reading it in bounded chunks keeps
each hand-over to the UI small, so keys stay responsive while a long history loads. Offsets, the
held-back torn last line and the count of skipped lines behave exactly as in EventReader.
"""

from __future__ import annotations

from tunedeck.engine.run.event_log import EventReader

CHUNK_BYTES = 1 << 20


class ChunkedEventReader(EventReader):
    def __init__(self, path, offset: int = 0, chunk_bytes: int = CHUNK_BYTES):
        super().__init__(path, offset)
        self.chunk_bytes = chunk_bytes
        self.caught_up = False  # True when the last read reached the end of the file

    def read_chunk(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(self.chunk_bytes)
                self.caught_up = len(data) < self.chunk_bytes
                if not data:
                    return []
                end = data.rfind(b"\n")
                if end < 0 and not self.caught_up:  # one line longer than a chunk: take it whole
                    self.caught_up = True
                    return super().read_new()
        except FileNotFoundError:
            self.caught_up = True
            return []
        return self.consume(data)  # a line still being written (or torn) is held back
