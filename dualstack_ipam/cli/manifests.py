"""Reading Service manifests for the CLI: files or stdin, YAML documents or JSON.

The one rule here: a document that does not parse as YAML or JSON *data* is
bad input (exit 2), whatever the parser raises. Parsers fail in more ways
than their own error classes: PyYAML raises ``ValueError`` on a date out of
range or on ``!!int "abc"``, Python's int digit limit raises ``ValueError``,
JSON nested 100,000 deep and deep YAML under the pure-Python loader raise
``RecursionError``. All of them become one :class:`CLIError` naming the
source. An integer YAML writes in hex, octal, binary or base 60 is not
bounded by the digit limit while being read, but nothing could print it
(error messages quote values): it is refused here too.

PyYAML is imported only when a manifest is read.
"""

from __future__ import annotations

import functools
import io
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from dualstack_ipam.cli.ground import CLIError

__all__ = ["load_manifests", "parse_documents", "parse_manifests", "read_source"]

_INT_TAG = "tag:yaml.org,2002:int"


def _printable_int(value: int) -> bool:
    """Whether ``str(value)`` works under the interpreter's int digit limit."""
    limit = sys.get_int_max_str_digits()
    # A cheap bound first: fewer than 3 bits per decimal digit is impossible.
    if not limit or value.bit_length() <= 3 * limit:
        return True
    bound: int = 10**limit
    return abs(value) < bound


@functools.cache
def _loader() -> type[Any]:
    """The safe loader (libyaml's when PyYAML has it), refusing unprintable ints."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def construct_int(loader: Any, node: yaml.ScalarNode) -> int:
        value = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
        if not _printable_int(value):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"an integer of more than {sys.get_int_max_str_digits()} decimal digits",
                node.start_mark,
            )
        return value

    # A subclass, so that PyYAML's own loaders stay as they are for others.
    loader: type[Any] = type("ManifestLoader", (base,), {})
    loader.add_constructor(_INT_TAG, construct_int)
    return loader


def _not_data(source: str, exc: BaseException) -> CLIError:
    if isinstance(exc, RecursionError):
        detail = "nested too deeply"
    else:
        detail = " ".join(str(exc).split()) or type(exc).__name__
    return CLIError(f"{source}: not YAML or JSON data: {detail}")


def _parse_json(text: str, source: str) -> list[Any] | None:
    """The JSON documents in ``text``, or None when it is not JSON syntax."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None  # flow-style YAML starts the same way: let YAML decide
    except Exception as exc:  # JSON syntax, but not data Python can hold
        raise _not_data(source, exc) from None
    return data if isinstance(data, list) else [data]


def _parse_yaml(text: str, source: str) -> list[Any]:
    import yaml

    stream = io.StringIO(text)
    stream.name = source  # YAML errors quote the stream's name
    loader = _loader()
    try:
        return list(yaml.load_all(stream, Loader=loader))
    except Exception as exc:  # any parser failure: YAMLError, ValueError, RecursionError...
        raise _not_data(source, exc) from None


def parse_documents(text: str, source: str) -> list[Any]:
    """The documents in ``text`` as they are: YAML documents, or JSON (a list: its items).

    Unlike :func:`parse_manifests`, a ``kind: List`` document is kept whole
    and empty documents stay (as None), so that a caller can name each one.

    Raises:
        CLIError: ``text`` does not parse as YAML or JSON data (exit 2).

    Complexity:
        O(len(text)).

    >>> parse_documents("kind: List\\nitems: []\\n---\\n", "stdin")
    [{'kind': 'List', 'items': []}, None]
    """
    docs = _parse_json(text, source) if text.lstrip().startswith(("{", "[")) else None
    if docs is None:
        docs = _parse_yaml(text, source)
    return docs


def parse_manifests(text: str, source: str) -> list[Any]:
    """The Service manifests in ``text``: YAML documents, or JSON.

    JSON may be one object or a list of objects; YAML may hold several
    documents (``---``). A ``kind: List`` document (what ``kubectl get -o
    yaml`` prints) stands for its ``items``. Empty documents are skipped.
    YAML is read by libyaml when PyYAML was built with it (the same
    documents, parsed in C), else by PyYAML's pure-Python safe loader.

    Args:
        text: the documents.
        source: how messages name where ``text`` came from.

    Returns:
        The manifests, in order (not validated: the library does that).

    Raises:
        CLIError: ``text`` does not parse as YAML or JSON data, whatever
            the parser's exception (exit 2).

    Complexity:
        O(len(text)).

    >>> from dualstack_ipam.cli.demo import SEED_SERVICES
    >>> [m["metadata"]["name"] for m in parse_manifests(SEED_SERVICES, "seed")]
    ['my-service', 'my-service-ipv6', 'my-service-ipv4']
    >>> parse_manifests('[{"metadata": {"name": "a"}}]', "-")
    [{'metadata': {'name': 'a'}}]
    >>> parse_manifests('x: !!int "abc"', "stdin")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dualstack_ipam.cli.ground.CLIError: stdin: not YAML or JSON data: invalid literal ... 'abc'
    """
    manifests: list[Any] = []
    for doc in parse_documents(text, source):
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            items = doc.get("items")
            manifests.extend(items if isinstance(items, list) else [items])
        elif doc is not None:
            manifests.append(doc)
    return manifests


def read_source(source: str) -> str:
    """The text of file ``source``, or of stdin for ``-``, decoded as strict UTF-8.

    Raises:
        CLIError: the bytes are not UTF-8 (exit 2).
        OSError: the file cannot be read (exit 2).

    Complexity:
        O(size of the file).
    """
    try:
        if source == "-":
            # Bytes decoded strictly, as for files (the text layer of stdin
            # would let invalid bytes through as surrogates).
            return sys.stdin.buffer.read().decode("utf-8")
        with open(source, encoding="utf-8") as file:
            return file.read()
    except UnicodeDecodeError as exc:
        raise CLIError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_manifests(sources: Sequence[str]) -> list[tuple[str, Any]]:
    """``(label, manifest)`` for every document of every source, in order.

    The label names the source and the document's position, for messages.

    Raises:
        CLIError: a source that does not parse, or no manifest at all (exit 2).
        OSError: a file cannot be read (exit 2).

    Complexity:
        O(total size of the sources).
    """
    found: list[tuple[str, Any]] = []
    for source in sources:
        name = "stdin" if source == "-" else source
        docs = parse_manifests(read_source(source), name)
        found.extend((f"{name} document {i}", doc) for i, doc in enumerate(docs, 1))
    if not found:
        raise CLIError(f"no Service manifest in {', '.join(sources)}")
    return found
