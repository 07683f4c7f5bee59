"""Progress bars for long work: warm starts, renames, exports and verifies of more than 256 MiB.

A bar (tqdm, counting bytes) is drawn on stderr when `verbose` is 1 and stderr is a terminal, never
in logs that are not one; below 256 MiB the work takes about a second and no bar is drawn. Library
functions take `verbose=1` and an optional `progress(bytes_done, bytes_total)` callback; a callback
given replaces the bar.

```python
with klc.progress.ProgressBar("export", verbose=1) as bar:
    for done in range(0, total + 1, step):
        bar(done, total)
```
"""

from __future__ import annotations

import shutil
import sys
from typing import Callable, Optional, TextIO

Progress = Callable[[int, int], None]

MIN_BYTES = 256 * 1024 * 1024  # work smaller than this draws no bar


class ProgressBar:
    """A `progress(done, total)` callback that draws a byte-counting bar once `total` exceeds MIN_BYTES.

    Args:
        description: what the bar counts ("warm start", "verify", ...), shown before it.
        verbose: 1 to draw (on a terminal), 0 never.
        stream: where to draw (default: stderr at the first update); nothing is drawn unless it is a terminal.
    """

    def __init__(self, description: str, verbose: int = 1, stream: Optional[TextIO] = None) -> None:
        self.description = description
        self.verbose = verbose
        self.stream = stream
        self._bar = None
        self._shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            if not self.verbose or total <= MIN_BYTES or not _is_terminal(self.stream or sys.stderr):
                return
            from tqdm import tqdm

            # A pseudo-terminal without a size (script, some CI consoles) reports 0 columns: 80 then.
            columns = shutil.get_terminal_size((80, 24)).columns or 80
            self._bar = tqdm(total=total, desc=self.description, unit="B", unit_scale=True, unit_divisor=1024,
                             file=self.stream or sys.stderr, leave=True, ncols=columns)
        self._bar.update(done - self._shown)
        self._shown = done
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def progress_for(progress: Optional[Progress], description: str, verbose: int) -> Optional[Progress]:
    """The callback a function reports to: the caller's `progress` if given, else a bar (verbose=1), else None."""
    if progress is not None:
        return progress
    return ProgressBar(description, verbose) if verbose else None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False
