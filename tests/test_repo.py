"""The README's promises that CI relies on."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert "python -m sessid bench" in commands[0]
    assert "pytest" in commands[1]


def test_every_python_block_of_the_documents_is_checked_by_ci():
    """.ci/typecheck runs mypy --strict on the module that docs_code.py makes of these blocks."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "typing"))
    try:
        import docs_code
    finally:
        sys.path.pop(0)
    documents = docs_code.documents()
    assert ROOT / "README.md" in documents and ROOT / "docs" / "design.md" in documents
    module = docs_code.module()
    compile(module, "docs_code.py", "exec")
    for path in documents:
        text = path.read_text()
        blocks = docs_code.python_blocks(path)
        assert len(blocks) == text.count("```python\n"), path
        for _, code in blocks:
            assert all(line in module for line in code.splitlines())
    assert "docs_code.py" in (ROOT / ".ci" / "typecheck").read_text()


def test_ci_runs_both_readme_commands_on_every_python():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_command 1" in ci and "readme_command 2" in ci
    assert '"$readme_install_and_test"' in ci and '"$readme_install_and_bench"' in ci
    pyproject = (ROOT / "pyproject.toml").read_text()
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in pyproject
    assert "PYTHONS=(3.11 3.12 3.13)" in ci


# What PyUnicode_FromFormat (and so PyErr_Format) knows, on every Python sessid supports: a
# conversion outside this list (%g, %f, %lx, ...) raises SystemError on 3.12+ and prints raw on 3.11.
C_API_CONVERSIONS = re.compile(
    r"%(?:%|c|[-0]?\d*(?:\.\d+)?(?:[dui]|l[dui]|ll[dui]|z[dui]|x|s|p|A|U|V|S|R))"
)
FORMATTING_CALL = re.compile(r"\b(?:PyErr_Format|PyUnicode_FromFormat|bad_reply)\s*\(")
STRING_LITERAL = re.compile(r'"((?:\\.|[^"\\])*)"')


def format_strings(source):
    """The string literals inside each call that formats with the C API's conversions."""
    for call in FORMATTING_CALL.finditer(source):
        depth, end = 0, call.end() - 1
        for end in range(call.end() - 1, len(source)):
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            if depth == 0:
                break
        yield call.group(0), "".join(STRING_LITERAL.findall(source[call.end():end]))


def test_every_c_format_string_uses_conversions_the_c_api_knows():
    checked = 0
    for path in sorted((ROOT / "sessid").glob("_*.c")):
        for call, text in format_strings(path.read_text()):
            leftover = C_API_CONVERSIONS.sub("", text)
            assert "%" not in leftover, f"{path.name}: {call} {text!r}"
            checked += 1
    assert checked > 10
