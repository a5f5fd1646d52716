"""How a command ends: its output on stdout, or one line on stderr and an exit code.

The exit codes (``docs/cli.md``): 0 done; 1 refused by the current state;
2 bad input, or an error of the environment (an unreadable file, output
that cannot be written) while nothing was changed; 3 the change was saved
but its output could not be written; 4 ``reconcile`` found differences
that remain after the call; 5 the store was unavailable; 70 a bug of
ours; 130 interrupted. Exits 1, 2 and 5 always mean that nothing
changed: a command's change is one store transaction (or, for several
Services, undone on failure: see :mod:`dualstack_ipam.cli.service_commands`)
and its text is rendered right after it, so writing the text is the only
step left that can fail after the save, and :func:`emit` turns that failure
into exit 3 with a line that says the change was saved.

A failed write leaves the unwritten text in ``sys.stdout``'s buffer, and the
interpreter flushes that buffer again when it exits: that second failure
would print a traceback-like "Exception ignored" message and turn the exit
code into 120. So after a failed write, stdout's file descriptor is pointed
at ``/dev/null`` (the recipe of Python's documentation for ``SIGPIPE``).

click is imported only when these functions run.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from dualstack_ipam.cli.ground import PROG, CLIError, exit_code_for
from dualstack_ipam.errors import IPAMError

__all__ = ["EXIT_DIFFERENCES", "EXIT_INTERNAL", "EXIT_OUTPUT_LOST", "emit", "guarded"]

EXIT_OUTPUT_LOST = 3
"""The change was saved, but the command's output could not be written."""

EXIT_DIFFERENCES = 4
"""``reconcile``: the store and the truth still differ after the call (its
report was printed; without ``--repair`` nothing was changed)."""

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not the user's input
"""A bug in dualstack-ipam (reported on one line too)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename!r}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def _silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null, so that nothing retries the lost text."""
    stream = sys.stdout
    if stream is None:
        return
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test runner's capture): nothing will retry
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _flush_stdout() -> None:
    """Flush stdout; silence it if the pending text cannot be written."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):
        _silence_stdout()


def emit(output: str) -> None:
    """Print a command's output on stdout, with a newline.

    ``output`` is usually an :class:`~dualstack_ipam.cli.ground.Output`,
    whose ``saved`` names the store the command changed (or is None).

    Raises:
        CLIError: the text could not be written (a closed pipe, a full
            disk, stdout closed): exit 3, with a message saying that the
            change was saved in ``saved``, when there is one; else exit 2,
            saying that nothing was changed.

    Complexity:
        O(len(output)).

    >>> emit("hello")
    hello
    """
    import click

    try:
        if sys.stdout is None:  # started with stdout closed (">&-")
            raise OSError(0, "stdout is closed")
        click.echo(output)
    except OSError as exc:
        _silence_stdout()
        reason = _message(exc)
        saved = getattr(output, "saved", None)
        if saved is None:
            raise CLIError(f"could not write the output ({reason}); nothing was changed") from None
        raise CLIError(
            f"could not write the output ({reason}), but the change was saved in {saved!r}",
            EXIT_OUTPUT_LOST,
        ) from None


def _report(problem: str) -> None:
    import click

    # stderr may be gone too; then the exit code is all that is left to say it.
    with contextlib.suppress(OSError, ValueError):
        click.echo(f"{PROG}: error: {_one_line(problem)}", err=True)


def guarded(call: Callable[[], Any]) -> int:
    """Run ``call`` (click's main); any error becomes one stderr line and an exit code.

    Returns:
        ``call``'s exit code (0 when it returns no int), or the code of the
        error it raised (see :func:`~dualstack_ipam.cli.ground.exit_code_for`).

    Complexity:
        O(1) plus the cost of ``call``.

    >>> guarded(lambda: 0), guarded(lambda: None)
    (0, 0)
    """
    import click
    import yaml

    try:
        code = call()
        # Non-standalone click returns the code of --help / --version
        # exits, and the callbacks' None otherwise.
        return code if isinstance(code, int) and not isinstance(code, bool) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        ctx = exc.ctx
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        problem = exc.format_message() + hint
        code = exc.exit_code
    except click.ClickException as exc:
        problem, code = exc.format_message(), exc.exit_code
    except click.Abort:
        problem, code = "aborted", 130
    except (IPAMError, CLIError, yaml.YAMLError) as exc:
        problem, code = str(exc), exit_code_for(exc)
    except OSError as exc:
        problem, code = _message(exc), 2
    except Exception as exc:  # never a traceback, but say it is ours
        problem = f"internal error, please report it: {type(exc).__name__}: {exc}"
        code = EXIT_INTERNAL
    # Text a failed write left behind must not fail again at exit.
    _flush_stdout()
    _report(problem)
    return code
