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
