"""Rendering a Service: the manifest the API server would return.

The last stage of the manifest rules: the four IP fields of a resolved
:class:`~dualstack_ipam.services.intent.Intent`, written into the plain
copy of the manifest, as Kubernetes' registry fills them in.

>>> from dualstack_ipam.net import IPFamily
>>> from dualstack_ipam.services.intent import Intent
>>> render({"spec": {}}, Intent("cluster", "SingleStack", (IPFamily.IPv4,), (None,)),
...        ["10.0.0.7"])["spec"]
{'clusterIP': '10.0.0.7', 'clusterIPs': ['10.0.0.7'], 'ipFamilyPolicy': 'SingleStack', \
'ipFamilies': ['IPv4']}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dualstack_ipam.services.intent import EXTERNAL, HEADLESS, Intent
from dualstack_ipam.services.read import FAMILY_KEYS, NONE

__all__ = ["render"]


def render(manifest: dict[str, Any], intent: Intent, ips: Sequence[str]) -> dict[str, Any]:
    """Write ``intent``'s IP fields and ``ips`` into ``manifest``'s spec (in place).

    ``clusterIP``, ``clusterIPs`` (``["None"]`` when headless),
    ``ipFamilyPolicy`` and ``ipFamilies``; an ExternalName Service gets none
    of them, nor ``ipFamily``. The alpha ``ipFamily`` is kept as given.

    Returns:
        ``manifest`` itself.

    Complexity:
        O(1).
    """
    spec = manifest["spec"] = manifest.get("spec") or {}
    if intent.kind == EXTERNAL:  # validation left only empty values here
        for key in FAMILY_KEYS:
            spec.pop(key, None)
        return manifest
    ips = [NONE] if intent.kind == HEADLESS else list(ips)
    spec.update(clusterIP=ips[0], clusterIPs=ips, ipFamilyPolicy=intent.policy)
    spec["ipFamilies"] = [str(family) for family in intent.families]
    return manifest
