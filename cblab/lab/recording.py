"""A live session's recording: every row from the start, in memory up to a cap, then
spilled to a temporary file, so an export holds the whole session.

Memory stays bounded (`memory_rows` rows at most); the disk is bounded too
(`max_rows` rows in all). Past `max_rows` the recording keeps its start and stops:
`stopped_at` is the earliest lab time of a row it did not keep (rows arrive in
batches per source, not in time order) and `not_kept` counts them, so an export
can end where its data is complete and say exactly what it lacks, instead of
drawing a part it never had.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["DEFAULT_MAX_ROWS", "DEFAULT_MEMORY_ROWS", "Recording"]

DEFAULT_MEMORY_ROWS = 20_000
DEFAULT_MAX_ROWS = 5_000_000  # about 1 GB of rows on disk: hours of a busy lab


class Recording:
    """Rows (tuples) in arrival order; `rows()` gives them all back, spilled ones first."""

    def __init__(self, memory_rows: int = DEFAULT_MEMORY_ROWS, *,
                 max_rows: int = DEFAULT_MAX_ROWS, spill_dir: str | None = None,
                 t_index: int = 2) -> None:
        if isinstance(memory_rows, bool) or not isinstance(memory_rows, int) or memory_rows < 1:
            raise ValueError(f"memory_rows must be an int >= 1, got {memory_rows!r}")
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < memory_rows:
            raise ValueError(f"max_rows must be an int >= memory_rows ({memory_rows}), got {max_rows!r}")
        self.memory_rows = memory_rows
        self.max_rows = max_rows
        self._spill_dir = spill_dir
        self._t_index = t_index  # where a row keeps its lab time (for `stopped_at`)
        self._memory: list[tuple[Any, ...]] = []
        self._file: IO[bytes] | None = None
        self.spilled = 0  # rows written to the file
        self.not_kept = 0  # rows past max_rows
        self.stopped_at: float | None = None  # earliest lab time of a row not kept

    def __len__(self) -> int:
        """Rows kept (in memory and spilled)."""
        return self.spilled + len(self._memory)

    @property
    def in_memory(self) -> int:
        """Rows held in memory now (at most `memory_rows`)."""
        return len(self._memory)

    def append(self, row: tuple[Any, ...]) -> None:
        if len(self) >= self.max_rows:
            t = float(row[self._t_index])  # sources arrive in batches: keep the earliest
            self.stopped_at = t if self.stopped_at is None else min(self.stopped_at, t)
            self.not_kept += 1
            return
        self._memory.append(row)
        if len(self._memory) >= self.memory_rows:
            self._spill()

    def _spill(self) -> None:
        if self._file is None:
            # anonymous: the system removes it when closed, collected or the process ends
            self._file = tempfile.TemporaryFile(  # noqa: SIM115 (lives as long as the recording)
                prefix="cblab-recording-", dir=self._spill_dir)
        self._file.seek(0, 2)
        pickle.dump(self._memory, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.spilled += len(self._memory)
        self._memory = []

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Every kept row, in the order they came."""
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            while True:
                try:
                    chunk = pickle.load(self._file)  # our own file: trusted
                except EOFError:
                    break
                yield from chunk
        yield from list(self._memory)

    def close(self) -> None:
        """Drop the spilled rows (the file goes away)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = []
        self.spilled = 0
