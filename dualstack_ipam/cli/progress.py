"""A progress bar on stderr for long work, only when stderr is a terminal.

Commands that work through many items (``allocate-service`` with hundreds
of manifests, ``import``, ``reconcile``) wrap that work in
:func:`progress`. The bar is click's, drawn on stderr, and only when
stderr is a terminal and the work has at least :data:`MIN_ITEMS` items:
a pipe, a file or a test runner's capture gets nothing at all (click
would print the bar's label once there), so stdout and the one-line
error contract stay as they are.

click is imported only when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["MIN_ITEMS", "Advance", "progress", "stderr_is_terminal"]

MIN_ITEMS = 100
"""Work of fewer items shows no bar: it ends before a bar would help."""

Advance = Callable[[int], None]
"""What :func:`progress` yields: ``advance(n)`` says n more items are done."""


def stderr_is_terminal() -> bool:
    """Whether ``sys.stderr`` is a terminal (False when it is missing or closed).

    Complexity:
        O(1).

    >>> import io, sys
    >>> saved, sys.stderr = sys.stderr, io.StringIO()
    >>> stderr_is_terminal()
    False
    >>> sys.stderr = saved
    """
    stream = sys.stderr
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def _nothing(count: int) -> None:
    """Advance no bar."""


@contextlib.contextmanager
def progress(length: int, label: str) -> Iterator[Advance]:
    """A bar of ``length`` items on stderr, when it is a terminal; yields ``advance(n)``.

    Without a terminal, or for fewer than :data:`MIN_ITEMS` items, nothing
    is drawn and ``advance`` does nothing. The bar is finished (or left
    where it stopped, on an error) and its line ended when the block ends.

    Args:
        length: how many items the work has.
        label: what the work is, shown before the bar.

    Complexity:
        O(1) per ``advance`` call (click redraws at most every few items).

    >>> with progress(1000, "importing") as advance:  # stderr is no terminal here
    ...     advance(1000)
    """
    if length < MIN_ITEMS or not stderr_is_terminal():
        yield _nothing
        return
    import click

    bar: Any = click.progressbar(length=length, label=label, file=sys.stderr)

    def advance(count: int) -> None:
        # A terminal that went away must not fail the work the bar follows.
        with contextlib.suppress(OSError, ValueError):
            bar.update(count)

    with contextlib.suppress(OSError, ValueError):
        bar.__enter__()
    try:
        yield advance
    finally:
        with contextlib.suppress(OSError, ValueError):
            bar.render_finish()
