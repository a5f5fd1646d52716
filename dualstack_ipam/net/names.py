"""Kubernetes object names in manifests: DNS-1123 labels and subdomains, DNS-1035 labels.

The rules are Kubernetes' ``apimachinery/pkg/util/validation``: a DNS-1123
label (a namespace) is at most 63 of ``a-z``, ``0-9`` and ``-``, starting
and ending alphanumeric; a DNS-1035 label (a Service name) also starts with
a letter; a DNS-1123 subdomain (an ``externalName``) is dot-separated
DNS-1123 labels, at most 253 characters. These check manifests only: node
names and allocator keys stay plain non-empty strings.

>>> is_dns1035_label("my-service"), is_dns1035_label("1web")
(True, False)
>>> is_dns1123_label("0prod"), is_dns1123_subdomain("db.example.com")
(True, True)
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["is_dns1035_label", "is_dns1123_label", "is_dns1123_subdomain"]

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_LABEL_MAX, _SUBDOMAIN_MAX = 63, 253


def is_dns1123_label(value: Any) -> bool:
    """Whether ``value`` is a ``str`` and a DNS-1123 label (a namespace).

    Complexity:
        O(len(value)).

    >>> is_dns1123_label("kube-system"), is_dns1123_label("Team-A"), is_dns1123_label(5)
    (True, False, False)
    """
    return (
        isinstance(value, str)
        and len(value) <= _LABEL_MAX
        and _DNS1123_LABEL.fullmatch(value) is not None
    )


def is_dns1035_label(value: Any) -> bool:
    """Whether ``value`` is a ``str`` and a DNS-1035 label (a Service name).

    Complexity:
        O(len(value)).

    >>> is_dns1035_label("web"), is_dns1035_label("web-"), is_dns1035_label("a" * 64)
    (True, False, False)
    """
    return (
        isinstance(value, str)
        and len(value) <= _LABEL_MAX
        and _DNS1035_LABEL.fullmatch(value) is not None
    )


def is_dns1123_subdomain(value: Any) -> bool:
    """Whether ``value`` is a ``str`` and a DNS-1123 subdomain (a host name).

    Complexity:
        O(len(value)).

    >>> is_dns1123_subdomain("api.example.com"), is_dns1123_subdomain("a..b")
    (True, False)
    """
    return (
        isinstance(value, str)
        and len(value) <= _SUBDOMAIN_MAX
        and _DNS1123_SUBDOMAIN.fullmatch(value) is not None
    )
