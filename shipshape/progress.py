"""Progress output shared by every entry point: one line per step, with its duration and outcome."""
from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True, highlight=False)


@contextmanager
def step(title: str):
    """Print `title`, run the block, then mark it done (with seconds) or failed, and re-raise."""
    console.print(f"[bold blue]==>[/] {title} ...")
    started = time.monotonic()
    try:
        yield
    except BaseException:
        console.print(f"[bold red] x [/] {title} failed after {time.monotonic() - started:.1f}s")
        raise
    console.print(f"[green] ok[/] {title} ({time.monotonic() - started:.1f}s)")


def info(message: str) -> None:
    console.print(f"    {message}", markup=False)
