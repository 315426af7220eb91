"""The documentation is true of the code: it builds with every link and anchor checked, every
`metricbench` command it shows is one the command line accepts, and those that need no data or
earlier run (`list`, the help) are run."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from metricbench.bench.cli import main, parse_arguments
from metricbench.bench.core.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FRONT_PAGE_BYTES = 10_240
# example arguments a page writes in capitals or angle brackets stand for a user's own: a command holding
# one is parsed with a stand-in
PLACEHOLDERS = {
    "SUITE": "quick",
    "DIR": "runs/x",
    "TASK": "digits",
    "URI": "sqlite:///runs/x/mlflow.db",
    "NAME": "*",
    "PATTERN": "*",
}


def _shell_commands(text: str) -> list[str]:
    """The `metricbench ...` commands in a page's shell code blocks (continuation lines joined, comments dropped)."""
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            line = line.split(" #", 1)[0].strip()
            for part in re.split(r"\s*(?:&&|;|\|)\s*", line):
                part = re.sub(r"^\.venv/bin/", "", part.strip())
                if part.startswith("metricbench ") or part == "metricbench":
                    commands.append(part.split(" >", 1)[0].strip())
    return commands


def _inline_commands(text: str) -> list[str]:
    """The `metricbench ...` commands a page's prose shows as code spans."""
    spans = [span.strip() for span in re.findall(r"(?<!`)`(metricbench [^`]+)`(?!`)", text)]
    return [span for span in spans if len(span.split()) > 2]  # `metricbench report` names a command, it does not run one


def _documented() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for command in dict.fromkeys(_shell_commands(text) + _inline_commands(text)):
            found.append((page.relative_to(ROOT).as_posix(), command))
    return found


def test_the_front_page_is_short():
    assert (ROOT / "README.md").stat().st_size <= FRONT_PAGE_BYTES


def test_the_pages_show_commands():
    assert len(_documented()) >= 10, _documented()


@pytest.mark.parametrize(
    ("page", "command"), _documented(), ids=lambda value: value if "/" in value or value.endswith(".md") else ""
)
def test_every_documented_command_is_accepted_by_the_command_line(page, command):
    words = [PLACEHOLDERS.get(word, word) for word in shlex.split(command)[1:]]
    if any(re.fullmatch(r"<[^>]+>|\[.*\]|\.\.\.", word) for word in words):
        pytest.skip(f"{page}: a synopsis, not a command: {command}")
    try:
        parse_arguments(words)
    except UsageError as exc:
        pytest.fail(f"{page}: `{command}` is refused: {exc}")
    except SystemExit as exc:
        assert exc.code == 0, f"{page}: `{command}` is refused by the parser (exit {exc.code})"


def _runnable() -> list[tuple[str, str]]:
    return [(page, command) for page, command in _documented() if re.match(r"metricbench (list|--help|-h|--version)\b", command)]


@pytest.mark.parametrize(("page", "command"), _runnable(), ids=str)
def test_the_documented_commands_that_need_no_run_succeed(page, command, capsys):
    try:
        code = main([PLACEHOLDERS.get(word, word) for word in shlex.split(command)[1:]])
    except SystemExit as exc:  # --help and --version exit through argparse
        code = exc.code
    assert code == 0, f"{page}: `{command}` exited {code}: {capsys.readouterr().err}"


MKDOCS = shutil.which("mkdocs", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(MKDOCS is None, reason="mkdocs is not installed (the project's docs extra)")
def test_the_docs_build_with_every_link_and_anchor_checked(tmp_path):
    out = subprocess.run(
        [MKDOCS, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)},
        timeout=600,
    )
    warnings = [line for line in out.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert out.returncode == 0, "\n".join(warnings) or out.stderr[-3000:]
