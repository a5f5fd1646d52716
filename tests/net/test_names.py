"""dualstack_ipam.net.names: Kubernetes name rules for manifests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam.net.names import is_dns1035_label, is_dns1123_label, is_dns1123_subdomain

LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


@pytest.mark.parametrize("value", ["a", "web", "my-service", "a1", "a" * 63, "a-b-c"])
def test_dns1035_labels(value: str) -> None:
    assert is_dns1035_label(value)
    assert is_dns1123_label(value)


@pytest.mark.parametrize(
    "value", ["", "1web", "-web", "web-", "Web", "web.svc", "my_service", "a" * 64, None, 7]
)
def test_not_dns1035_labels(value: Any) -> None:
    assert not is_dns1035_label(value)


@pytest.mark.parametrize("value", ["0prod", "1", "9-a"])
def test_a_dns1123_label_may_start_with_a_digit(value: str) -> None:
    assert is_dns1123_label(value)
    assert not is_dns1035_label(value)


@pytest.mark.parametrize("value", ["", "-ns", "ns-", "Team-A", "kube_system", "n" * 64, 5])
def test_not_dns1123_labels(value: Any) -> None:
    assert not is_dns1123_label(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("example.com", True),
        ("my.database.example.com", True),
        ("a", True),
        ("a" * 63 + "." + "b" * 63, True),
        (".".join(["a" * 63] * 4)[:253], True),
        ("a" * 254, False),
        ("a..example.com", False),
        ("DB.example.com", False),
        ("example.com.", False),  # the trailing dot is the caller's to strip
        ("not a host!", False),
        (None, False),
    ],
)
def test_dns1123_subdomains(value: Any, ok: bool) -> None:
    assert is_dns1123_subdomain(value) is ok


@given(st.text(LABEL_CHARS, min_size=1, max_size=70))
def test_labels_are_subdomains_and_1035_is_1123(value: str) -> None:
    if is_dns1035_label(value):
        assert is_dns1123_label(value)
    if is_dns1123_label(value):
        assert is_dns1123_subdomain(value)
        assert len(value) <= 63
