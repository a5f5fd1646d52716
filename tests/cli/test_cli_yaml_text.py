"""YAML out through libyaml when PyYAML has it: the same text as the pure emitter."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from cli_support import SEED_FILE
from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam import ClusterConfig, ServiceIPAllocator
from dualstack_ipam.cli import parse_manifests
from dualstack_ipam.cli.render import manifests_yaml
from dualstack_ipam.cli.yaml_text import dump, dumper, emitters_agree

needs_libyaml = pytest.mark.skipif(
    not getattr(yaml, "__with_libyaml__", False), reason="PyYAML without libyaml"
)

LAST_APPLIED = (
    '{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"web",'
    '"namespace":"default"},"spec":{"ports":[{"port":80,"targetPort":8080}],'
    '"selector":{"app":"web"}}}\n'
)


def sample() -> list[dict[str, Any]]:
    """The seed's Services allocated, one with what ``kubectl get -o yaml`` adds."""
    alloc = ServiceIPAllocator(
        ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
    )
    manifests = parse_manifests(SEED_FILE.read_text(), "seed")
    manifests[0]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED,
        "description": "Ünïcode, quotes ' \" and a colon: here " * 5,
    }
    manifests[0]["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    return [alloc.allocate_service(m) for m in manifests]


@needs_libyaml
def test_both_dumpers_print_the_sample_alike() -> None:
    manifests = sample()
    assert all(emitters_agree(m) for m in manifests)  # so libyaml prints them
    fast = manifests_yaml(manifests, libyaml=True)
    assert fast == manifests_yaml(manifests, libyaml=False)
    assert [yaml.safe_load(part) for part in fast.split("---\n")] == manifests
    # The C emitter alone, without the fallback, prints the same too.
    for manifest in manifests:
        alone = yaml.dump(manifest, Dumper=yaml.CSafeDumper, sort_keys=False, width=2**31 - 1)
        assert alone == dump(manifest, libyaml=False)


def test_libyaml_is_used_when_present() -> None:
    with_libyaml = getattr(yaml, "__with_libyaml__", False)
    assert (dumper() is not yaml.SafeDumper) == with_libyaml
    assert dumper(libyaml=False) is yaml.SafeDumper


@needs_libyaml
@pytest.mark.parametrize(
    "data",
    [{"": None}, {"k" * 125: 1}, {"\r": 1}, {"é": 1}, {1: "a"}, {"a": [{"b\x00": 2}]}],
)
def test_keys_the_emitters_print_apart_go_through_the_pure_one(data: Any) -> None:
    assert not emitters_agree(data)
    assert dump(data, libyaml=True) == yaml.dump(
        data, Dumper=yaml.SafeDumper, sort_keys=False, width=2**31 - 1
    )


def test_long_strings_are_not_folded() -> None:
    text = dump({"a": "word " * 40 + "\n x"})
    assert len(text.splitlines()) == 1
    assert yaml.safe_load(text) == {"a": "word " * 40 + "\n x"}


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.dates(),
    st.text(max_size=200),
    st.text(st.sampled_from(" a\n\t-:#'\"\\\x85\u2028é"), max_size=200),
)
KEYS = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=130),
    st.text(max_size=5),
    st.integers(),
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@needs_libyaml
@settings(max_examples=150)
@given(st.dictionaries(KEYS, DATA, max_size=5))
def test_the_text_is_the_pure_emitters_whatever_the_data(data: dict[Any, Any]) -> None:
    assert dump(data, libyaml=True) == dump(data, libyaml=False)
