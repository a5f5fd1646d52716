"""Documents that do not parse as YAML or JSON data are bad input (exit 2).

Issue 8, defect 3: parsers fail with more than their own error classes
(``ValueError`` on a date out of range or ``!!int "abc"``, the int digit
limit, ``RecursionError`` on deep nesting); each of them used to end the
program with exit 70, "internal error". Whatever the parser raises, the
command now exits 2 with one stderr line and changes nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import error_line, invoke, program_env, run
from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam.cli import CLIError, parse_manifests

NAME = "metadata: {name: web}\n"
DIGITS = "1" + "0" * 5000  # over Python's default limit of 4300 digits

NOT_DATA = {
    "yaml-month-13": NAME + "spec: {x: 2024-13-45}\n",
    "yaml-year-0": NAME + "spec: {x: 0000-01-01}\n",
    "yaml-int-abc": NAME + 'spec: {x: !!int "abc"}\n',
    "yaml-int-digits": NAME + f"spec: {{x: {DIGITS}}}\n",
    "yaml-hex-digits": NAME + "spec: {x: 0x" + "f" * 5000 + "}\n",
    "yaml-base60-digits": NAME + "spec: {x: " + ":".join(["59"] * 3000) + "}\n",
    "json-int-digits": '{"metadata": {"name": "web"}, "spec": {"x": ' + DIGITS + "}}",
    "json-deep": "[" * 100_000 + "]" * 100_000,
    "yaml-deep-libyaml": NAME + "spec: {x: " + "[" * 100_000 + "]" * 100_000 + "}\n",
}


@pytest.fixture
def state(tmp_path: Path) -> str:
    return str(tmp_path / "state.json")


@pytest.mark.parametrize("text", NOT_DATA.values(), ids=NOT_DATA.keys())
def test_documents_that_are_not_data_exit_2(state: str, text: str) -> None:
    for command in ("allocate-service", "release-service"):
        result = invoke(command, "-f", "-", "--state", state, input=text)
        assert result.exit_code == 2, result.stderr
        assert "stdin: not YAML or JSON data" in error_line(result.stderr)
        assert result.stdout == ""
        assert not Path(state).exists()  # nothing changed, not even a new file


def test_an_unprintable_integer_is_named_by_its_place() -> None:
    with pytest.raises(CLIError, match=r'more than 4300 decimal digits in "m.yaml", line 2'):
        parse_manifests(NOT_DATA["yaml-hex-digits"], "m.yaml")


def test_integers_under_the_digit_limit_still_parse() -> None:
    big = "9" * 4300
    assert parse_manifests(f"x: {big}\n", "-") == [{"x": int(big)}]
    assert parse_manifests("x: 0x" + "f" * 100 + "\n", "-") == [{"x": 16**100 - 1}]


@pytest.mark.parametrize("name", ["json-deep", "yaml-int-abc", "json-int-digits"])
def test_not_data_subprocess(tmp_path: Path, name: str) -> None:
    proc = run("allocate-service", "-f", "-", cwd=tmp_path, input=NOT_DATA[name])
    assert proc.returncode == 2, proc.stderr
    assert "not YAML or JSON data" in error_line(proc.stderr)
    assert list(tmp_path.iterdir()) == []


def test_deep_yaml_with_the_pure_python_loader(tmp_path: Path) -> None:
    # PyYAML without libyaml: its Python parser recurses once per level.
    document = tmp_path / "deep.yaml"
    document.write_text(NAME + "spec: {x: " + "[" * 100_000 + "]" * 100_000 + "}\n")
    code = (
        "import sys, yaml; del yaml.CSafeLoader; "
        "from dualstack_ipam.cli import main; "
        "sys.exit(main(['allocate-service', '-f', 'deep.yaml', '--state', 's.json']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=program_env(),
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "deep.yaml: not YAML or JSON data: nested too deeply" in error_line(proc.stderr)
    assert not (tmp_path / "s.json").exists()


_SCALARS = st.sampled_from(
    [
        "2024-13-45",
        "0000-01-01",
        '!!int "abc"',
        "!!float x",
        "!!binary ???",
        "!!timestamp nope",
        "0x" + "f" * 4000,
        "1" * 5000,
        "*undefined",
        "&a [*a]",
        "!!set {a: 1}",
        "12:30:00",
        ".nan",
    ]
)


def _exit_code_of_parsing(text: str) -> int:
    try:
        parse_manifests(text, "-")
    except CLIError as exc:
        return exc.exit_code
    return 0


@given(st.lists(st.one_of(_SCALARS, st.text(max_size=20)), min_size=1, max_size=4))
def test_parse_manifests_raises_nothing_but_cli_error(parts: list[str]) -> None:
    text = "".join(f"k{i}: {part}\n" for i, part in enumerate(parts))
    for candidate in (text, "[" + ", ".join(parts) + "]", "{" + text + "}"):
        # Any other exception escapes and fails the test.
        assert _exit_code_of_parsing(candidate) in (0, 2)


_FIELDS = st.sampled_from(
    [
        "metadata: {name: web}",
        "spec:",
        "  clusterIP:",
        "  ipFamilies:",
        "  - IPv4",
        "---",
        "kind: List",
    ]
)


@settings(max_examples=40)
@given(st.lists(st.one_of(_FIELDS, _SCALARS, st.text(max_size=12)), max_size=6))
def test_allocate_service_never_fails_as_an_internal_error(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str]
) -> None:
    state = str(tmp_path_factory.mktemp("documents") / "state.json")
    result = invoke("allocate-service", "-f", "-", "--state", state, input="\n".join(parts))
    assert result.exit_code in (0, 1, 2), result.stderr
