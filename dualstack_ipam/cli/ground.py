"""The ground every command stands on: the program's name, the default
cluster, :class:`CLIError`, :class:`Output` and the exit codes.

Exit codes (``docs/cli.md``): 0 done; 1 refused by the current state; 2 bad
input; 3 saved, but the output was lost (:mod:`~dualstack_ipam.cli.reporting`);
4 ``reconcile`` found differences that remain; 5 the store was unavailable.
1, 2 and 5 mean that nothing changed.
"""

from __future__ import annotations

from typing import Self

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import AlreadyAllocatedError, PoolExhaustedError, StoreUnavailableError

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_FLAGS",
    "EXIT_UNAVAILABLE",
    "PROG",
    "CLIError",
    "Output",
    "exit_code_for",
]

EXIT_UNAVAILABLE = 5
"""The store could not be reached (locked past the busy timeout, down): nothing changed."""

PROG = "dualstack-ipam"

DEFAULT_FLAGS = (
    "--cluster-cidr=10.244.0.0/16,fc00::/24",
    "--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112",
    "--node-cidr-mask-size-ipv4=24",
    "--node-cidr-mask-size-ipv6=64",
)
"""The seed's kube-controller-manager flags: the embedded default cluster."""

DEFAULT_CONFIG = ClusterConfig.from_flags(DEFAULT_FLAGS)
"""The cluster of ``demo`` and of a store created without ``init``."""


class CLIError(Exception):
    """An error the CLI reports on one line, with its exit code.

    Args:
        message: the line (without the program's prefix).
        exit_code: 2 (bad input) unless said otherwise.

    Complexity:
        O(1).

    >>> CLIError("no Service range").exit_code
    2
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Output(str):
    """A command's text to print, and the store it saved a change in.

    A ``str`` (scripts print it as before) with one attribute more:
    ``saved``, the store's path or URL as given when the command changed
    it, None when it changed nothing. When the text cannot be written, the
    program exits 3 if ``saved`` is set (the change holds, the output is
    lost), 2 otherwise.

    Args:
        text: what to print.
        saved: the store changed, or None.

    Complexity:
        O(len(text)).

    >>> out = Output("released", saved="state.json")
    >>> print(out), out.saved, Output("plan").saved
    released
    (None, 'state.json', None)
    """

    saved: str | None

    def __new__(cls, text: str, saved: str | None = None) -> Self:
        output = super().__new__(cls, text)
        output.saved = saved
        return output


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error: 1 refused by the state, 2 bad input, 5 store unavailable.

    :class:`PoolExhaustedError` and :class:`AlreadyAllocatedError` are
    refusals by the state; that includes
    :class:`~dualstack_ipam.services.allocator.ClusterIPTakenError`, the
    ``ServiceValidationError`` a manifest gets when it asks for a cluster IP
    another Service holds (it is both).
    :class:`~dualstack_ipam.StoreUnavailableError` (the store stayed locked
    or unreachable; nothing changed) is 5. Every other library error, a
    corrupt or foreign store file, bad YAML or an unreadable file is bad
    input.

    Complexity:
        O(1).

    >>> from dualstack_ipam import PoolExhaustedError, InvalidConfigError
    >>> exit_code_for(PoolExhaustedError("full")), exit_code_for(InvalidConfigError("bad"))
    (1, 2)
    """
    if isinstance(exc, CLIError):
        return exc.exit_code
    if isinstance(exc, StoreUnavailableError):
        return EXIT_UNAVAILABLE
    if isinstance(exc, (PoolExhaustedError, AlreadyAllocatedError)):
        return 1
    return 2
