"""``python -m dualstack_ipam``: the ``dualstack-ipam`` command line.

Usage::

    python -m dualstack_ipam demo
    python -m dualstack_ipam plan --cluster-cidr=10.244.0.0/16,fc00::/24 --json

See :mod:`dualstack_ipam.cli` and ``docs/cli.md``.
"""

from __future__ import annotations

# Guarded: pytest's --doctest-modules imports this module to look for doctests.
if __name__ == "__main__":
    import sys

    from dualstack_ipam.cli import main

    sys.exit(main())
