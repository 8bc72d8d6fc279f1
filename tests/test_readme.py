"""The README's quickstart is the package's main doctest (which pytest runs
with ``--doctest-modules``): the same statements and the same outputs."""

import doctest
import re
from pathlib import Path

import streamrnn

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_is_the_main_doctest():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)
    readme_code = [line for line in block.splitlines() if not line.startswith("# ")]
    readme_outputs = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    examples = doctest.DocTestParser().get_examples(streamrnn.__doc__)
    code = [line for ex in examples for line in ex.source.rstrip("\n").splitlines()]
    outputs = [ex.want.rstrip("\n") for ex in examples if ex.want]
    assert readme_code == code
    assert readme_outputs == outputs


def test_readme_set_up_commands_use_separate_environments():
    """The tests' environment would otherwise reuse the demo's."""
    text = README.read_text()
    section = text.split("## Set-up on a fresh machine")[1].split("\n## ")[0]
    venvs = re.findall(r"python3 -m venv (\S+) && \. (\S+)/bin/activate", section)
    assert len(venvs) == 2 and all(made == used for made, used in venvs)
    assert venvs[0][0] != venvs[1][0]


def test_readme_documents_every_cli_option():
    from streamrnn.cli import build_parser

    text = README.read_text().split("## Command line")[1].split("\n## ")[0]
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    options = {o for sub in ("forecast", "detect") for a in commands[sub]._actions for o in a.option_strings
               if o.startswith("--") and o != "--help"}
    missing = sorted(o for o in options if f"`{o}" not in text)
    assert not missing
