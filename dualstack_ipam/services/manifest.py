"""The Service manifest rules, by stage (an index; the rules live in the stages).

1. :mod:`~dualstack_ipam.services.read`: plain data, the key, each IP field
   checked on its own.
2. :mod:`~dualstack_ipam.services.intent`: the policy and families the API
   server defaults them to.
3. :mod:`~dualstack_ipam.services.update`: merging an update, and what may
   not change.
4. :mod:`~dualstack_ipam.services.render`: the manifest returned.

:func:`service_key` is public as :func:`dualstack_ipam.service_key`; import
it from there.
"""

from __future__ import annotations

from dualstack_ipam.services.read import service_key

__all__ = ["service_key"]
