"""YAML text out: libyaml's emitter when PyYAML has it, the same text as the pure one.

PyYAML's C emitter (``yaml.CSafeDumper``, when ``yaml.__with_libyaml__``)
prints a manifest several times faster than its pure-Python one
(``yaml.SafeDumper``). Both share PyYAML's Python representer, but the two
emitters do not always print the same text for the same data, although
both texts read back the same:

- they fold long scalars differently (where a line breaks, and whether
  the break is escaped), so lines are never folded here (``width`` is
  unbounded): a long string stays on one line;
- they decide differently when a mapping key is too long for the simple
  ``key: value`` form, or needs the explicit ``? key`` form: an empty key,
  one of 123-128 characters, one with control or non-ASCII characters.

So the C emitter prints only data whose keys are all non-empty printable
ASCII ``str`` of at most :data:`SIMPLE_KEY_MAX` characters (Kubernetes'
names, labels and annotation keys, nearly always); any other data goes
through the pure emitter. Either way the text is what the pure emitter
prints, which ``tests/cli/test_cli_yaml_text.py`` checks on random data.

PyYAML is imported only when these functions run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SIMPLE_KEY_MAX", "WIDTH", "dump", "dumper", "emitters_agree"]

SIMPLE_KEY_MAX = 100
"""The longest key the C emitter prints (the emitters part ways from 123)."""

WIDTH = 2**31 - 1
"""The line width given to both emitters: never reached, so nothing is folded."""


def dumper(libyaml: bool | None = None) -> type[Any]:
    """The safe dumper class: libyaml's when ``libyaml`` (None: when PyYAML has it).

    Raises:
        ImportError: ``libyaml`` is True and PyYAML was built without libyaml.

    Complexity:
        O(1).

    >>> import yaml
    >>> dumper(libyaml=False) is yaml.SafeDumper
    True
    """
    import yaml

    if libyaml is None:
        libyaml = bool(getattr(yaml, "__with_libyaml__", False))
    if not libyaml:
        return yaml.SafeDumper
    found: type[Any] | None = getattr(yaml, "CSafeDumper", None)
    if found is None:
        raise ImportError("PyYAML was built without libyaml (no yaml.CSafeDumper)")
    return found


def _plain_key(key: Any) -> bool:
    return (
        type(key) is str and 0 < len(key) <= SIMPLE_KEY_MAX and key.isascii() and key.isprintable()
    )


def emitters_agree(data: Any) -> bool:
    """Whether both emitters print ``data`` alike: every mapping key in it is plain.

    A plain key is a non-empty printable ASCII ``str`` of at most
    :data:`SIMPLE_KEY_MAX` characters (values may be anything the safe
    representer takes).

    Complexity:
        O(size of ``data``); iterative, so deep data cannot overflow the stack.

    >>> emitters_agree({"metadata": {"name": "web", "labels": {"app": "é"}}})
    True
    >>> emitters_agree({"": 1}), emitters_agree({"k" * 123: 1}), emitters_agree({1: "a"})
    (False, False, False)
    """
    stack = [data]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if not isinstance(item, (Mapping, list, tuple)) or id(item) in seen:
            continue
        seen.add(id(item))  # shared objects (YAML aliases) are looked at once
        if isinstance(item, Mapping):
            if not all(_plain_key(key) for key in item):
                return False
            stack.extend(item.values())
        else:
            stack.extend(item)
    return True


def dump(data: Any, *, libyaml: bool | None = None) -> str:
    """``data`` as one YAML document, block style, keys in their order, lines unfolded.

    ``libyaml`` None uses the C emitter when PyYAML has it and
    :func:`emitters_agree` holds; False always uses the pure one; True
    prefers the C one as None does (an ImportError without it). The text
    is the same either way.

    Raises:
        yaml.representer.RepresenterError: a value the safe representer
            does not take.
        ImportError: ``libyaml`` is True and PyYAML has no libyaml.

    Complexity:
        O(size of ``data``).

    >>> print(dump({"metadata": {"name": "web"}, "spec": {"clusterIPs": ["10.96.0.1"]}}), end="")
    metadata:
      name: web
    spec:
      clusterIPs:
      - 10.96.0.1
    """
    import yaml

    chosen = dumper(libyaml)
    if chosen is not yaml.SafeDumper and not emitters_agree(data):
        chosen = yaml.SafeDumper
    text: str = yaml.dump(
        data, Dumper=chosen, sort_keys=False, default_flow_style=False, width=WIDTH
    )
    return text
