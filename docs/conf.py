"""Sphinx configuration for the dualstack_ipam documentation.

Build (the one documented command, from the repository root)::

    pip install -e '.[docs]'
    python -m sphinx -W --keep-going -b html docs build/docs

Importing this file only sets variables and defines functions: pytest
imports it while collecting doctests (``--doctest-modules`` over ``docs/``).
No network is used: intersphinx is deliberately not loaded, because the build
must work where only PyPI is reachable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dualstack_ipam

project = "dualstack_ipam"
author = "dualstack_ipam developers"
copyright = "dualstack_ipam developers"
release = dualstack_ipam.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# -- MyST ------------------------------------------------------------------

# Anchors for headings down to level 3, so pages can link to sections.
myst_heading_anchors = 3

# -- autodoc and napoleon --------------------------------------------------

autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Members are documented under the name users import them by
# (``dualstack_ipam.SubnetPool``), not the private module that defines them.
add_module_names = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections become field lists, so they never clash with the
# attributes autodoc documents itself (no duplicate object descriptions).
napoleon_use_ivar = True
napoleon_use_rtype = False
# Every public method states its cost; a "Complexity:" block gets a heading.
napoleon_custom_sections = ["Complexity"]

# Docstrings state the cost in one of two forms: a section (``Complexity:``
# alone on a line, the cost indented below it) or a sentence ending the first
# paragraph (``... Complexity: O(1).``). Napoleon renders only the first as a
# section, and in a property's first line reads ``text: O(1)`` as
# ``type: description``. So, before napoleon runs, every inline form becomes a
# section: each public member then shows its cost under the same heading.
_INLINE_COMPLEXITY = re.compile(r"^(?:(?P<head>\S.*?)\s+)?Complexity:\s+(?P<cost>\S.*)$")
# ``a, b: text`` in an Attributes section documents two names; napoleon would
# read ``b`` as a name and ``a,`` as its type.
_ATTRIBUTE_PAIR = re.compile(r"^(?P<indent>\s+)(?P<first>\w+), (?P<second>\w+): (?P<text>.*)$")


def _normalise_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Rewrite ``lines`` in place as described above (autodoc-process-docstring)."""
    result: list[str] = []
    in_cost = in_attributes = False
    for line in lines:
        if in_cost and line.strip():
            result.append("    " + line.strip())
            continue
        in_cost = False
        if line and not line[0].isspace():
            in_attributes = line == "Attributes:"
        match = _INLINE_COMPLEXITY.match(line)
        pair = _ATTRIBUTE_PAIR.match(line) if in_attributes else None
        if match:
            if match["head"]:
                result += [match["head"], ""]
            result += ["Complexity:", "    " + match["cost"]]
            in_cost = True
        elif pair:
            for attribute in (pair["first"], pair["second"]):
                result.append(f"{pair['indent']}{attribute}: {pair['text']}")
        else:
            result.append(line)
    lines[:] = result


# -- HTML ------------------------------------------------------------------

html_theme = "furo"
html_title = f"dualstack_ipam {release}"
html_static_path = ["_static"] if (Path(__file__).parent / "_static").is_dir() else []

# -- a completeness check --------------------------------------------------

_DIRECTIVE = re.compile(r"^\.\. (?:auto\w+|py:\w+):: ([\w.]+)", re.MULTILINE)


def _check_api_reference(app: Any) -> None:
    """Warn (an error under ``-W``) for a public name the API page leaves out."""
    from sphinx.util import logging

    page = Path(app.srcdir) / "api.md"
    documented = {target.rpartition(".")[2] for target in _DIRECTIVE.findall(page.read_text())}
    for name in sorted(set(dualstack_ipam.__all__) - documented):
        logging.getLogger(__name__).warning(
            "dualstack_ipam.%s is in __all__ but not documented in docs/api.md", name
        )


# -- generated figures ----------------------------------------------------


def _draw_demo_map(app: Any) -> None:
    """Draw the demo cluster's occupancy maps for the quickstart (builder-inited).

    The figure is made by the build, never committed: ``_generated/`` is in
    ``.gitignore``. It needs PyYAML (the seed's manifests), which
    myst-parser brings.
    """
    from dualstack_ipam.cli.maps import write_demo_map

    folder = Path(app.srcdir) / "_generated"
    folder.mkdir(exist_ok=True)
    write_demo_map(folder / "demo-map.svg")


def setup(app: Any) -> dict[str, Any]:
    """Register the completeness check and the generated figures with Sphinx."""
    app.connect("builder-inited", _check_api_reference)
    app.connect("builder-inited", _draw_demo_map)
    # Napoleon listens at the default priority, 500: run before it.
    app.connect("autodoc-process-docstring", _normalise_docstring, priority=400)
    return {"parallel_read_safe": True}
