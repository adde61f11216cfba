"""docs/langgraph.md: its Python snippets run, top to bottom, as one module."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "langgraph.md"


def test_the_snippets_of_docs_langgraph_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    # a real module: LangGraph resolves the state's type hints through sys.modules
    module = types.ModuleType("docs_langgraph")
    sys.modules[module.__name__] = module
    try:
        for i, block in enumerate(blocks):
            # dont_inherit: the snippets run as written, not under this file's __future__
            code = compile(block, f"{DOC.name} snippet {i + 1}", "exec", dont_inherit=True)
            exec(code, module.__dict__)  # the snippets assert what they claim
    finally:
        del sys.modules[module.__name__]
