"""``flagmw.lint``: the AST-based CI guard (issue 2, part 11).

The fixture service in ``tests/lint_fixtures/harbor`` is a Harbor-style code base with
scattered ``REFUND_TOOL_ENABLED`` / ``ENABLE_REFUND_TOOL`` reads, gated tools with a
typo'd key, ``noqa`` lines, a clean module and a file that does not parse; its registry
is ``tests/lint_fixtures/flags.yaml``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flagmw
from flagmw import Flag, FlagRegistry
from flagmw.lint import (
    CODES,
    TOGGLE_PATTERNS,
    LintFinding,
    is_toggle_name,
    lint_paths,
    lint_source,
    suggest_flag_for_env,
)

FIXTURES = Path(__file__).parent / "lint_fixtures"
HARBOR = FIXTURES / "harbor"
FLAGS = FIXTURES / "flags.yaml"
#: After rag.hybrid_search (2026-06-30) and ux.legacy_banner.enabled (2026-01-31)
#: expired, before prompt.style (2099-03-01).
TODAY = dt.date(2026, 9, 1)
REFUND_KEY = "tools.refund_api.enabled"


@pytest.fixture(scope="module")
def harbor_registry() -> FlagRegistry:
    return FlagRegistry.from_yaml(FLAGS)


@pytest.fixture(scope="module")
def harbor_findings(harbor_registry: FlagRegistry) -> list[LintFinding]:
    return lint_paths([HARBOR], harbor_registry, today=TODAY)


def rel(finding: LintFinding) -> str:
    return Path(finding.path).relative_to(HARBOR).as_posix()


def codes_at(findings: list[LintFinding]) -> set[tuple[str, int, str]]:
    return {(rel(f), f.line, f.code) for f in findings if f.path != str(FLAGS)}


def line_of(path: Path, text: str) -> int:
    """1-based number of the only line of ``path`` containing ``text``."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(hits) == 1, (path, text, hits)
    return hits[0]


# -- the Harbor service -------------------------------------------------------------------


def test_harbor_service_exact_findings(harbor_findings: list[LintFinding]) -> None:
    assert codes_at(harbor_findings) == {
        # FM001: toggles read from the environment, under both names and through aliases
        ("settings.py", 10, "FM001"),  # os.environ.get("REFUND_TOOL_ENABLED", ...)
        ("settings.py", 11, "FM001"),  # USE_REFLECTION; its noqa names FM002 only
        ("settings.py", 12, "FM001"),  # FALLBACK_LADDER_FLAG
        ("tools.py", 17, "FM001"),  # os.getenv("ENABLE_REFUND_TOOL", ...)
        ("workers/billing.py", 11, "FM001"),  # environ.get(REFUNDS_SWITCH) (constant)
        ("workers/billing.py", 15, "FM001"),  # getenv(f"{_PREFIX}MODEL_PRIMARY")
        ("workers/billing.py", 19, "FM001"),  # "USE_REFLECTION" in _os.environ
        # FM002: keys the registry does not define
        ("agent.py", 24, "FM002"),  # routed_model(..., fallbacks="model.fallback")
        ("agent.py", 30, "FM002"),  # rc[MAX_ITERATIONS_KEY] = "loop.max_iteration"
        ("agent.py", 63, "FM002"),  # client.explain("tools.refund_api.enabld")
        ("tools.py", 24, "FM002"),  # @gated("tools.kb_serach.enabled")
        # FM003: reads of the expired rag.hybrid_search
        ("agent.py", 46, "FM003"),  # run_config: RunConfig → run_config["rag.hybrid_search"]
        ("tools.py", 28, "FM003"),  # flagmw.current().enabled("rag.hybrid_search")
        # FM000: the Python 2 script
        ("legacy/broken.py", 7, "FM000"),
    }
    # ... plus the expired flag nobody reads, at its line in the registry file
    at_registry = [f for f in harbor_findings if f.path == str(FLAGS)]
    assert [(f.line, f.code, f.severity) for f in at_registry] == [
        (line_of(FLAGS, "  ux.legacy_banner.enabled:"), "FM003", "warning")
    ]
    assert "ux.legacy_banner.enabled" in at_registry[0].message
    assert at_registry[0].suggestion == "delete it from the registry"


def test_each_finding_points_at_its_key(harbor_findings: list[LintFinding]) -> None:
    # guards the hard-coded lines above against fixture edits, and checks the columns:
    # a finding points at the key expression (a literal, or the constant holding it)
    constants = {
        "REFUND_TOOL_ENABLED": "REFUNDS_SWITCH",
        "FF_MODEL_PRIMARY": 'f"{_PREFIX}MODEL_PRIMARY"',
        "loop.max_iteration": "MAX_ITERATIONS_KEY",
    }
    checked = 0
    for f in harbor_findings:
        if f.code == "FM000" or f.path == str(FLAGS):
            continue
        line = Path(f.path).read_text().splitlines()[f.line - 1]
        key = f.message.split("'")[1]
        at = line[f.col - 1 :]
        assert at.startswith((f'"{key}"', constants.get(key, "\0"))), (str(f), line)
        checked += 1
    assert checked == 13


def test_refund_toggles_under_both_names_point_at_the_refund_flag(
    harbor_findings: list[LintFinding],
) -> None:
    refund = [f for f in harbor_findings if f.code == "FM001" and "REFUND" in f.message]
    assert {(rel(f), f.message.split("'")[1]) for f in refund} == {
        ("settings.py", "REFUND_TOOL_ENABLED"),
        ("tools.py", "ENABLE_REFUND_TOOL"),
        ("workers/billing.py", "REFUND_TOOL_ENABLED"),
    }
    for f in refund:
        assert f.severity == "error"
        assert f.suggestion == (
            f"use the registry flag {REFUND_KEY!r}: rc[{REFUND_KEY!r}] in a run, "
            f"client.is_enabled({REFUND_KEY!r}) outside one"
        )


def test_other_fm001_suggestions(harbor_findings: list[LintFinding]) -> None:
    by_name = {f.message.split("'")[1]: f for f in harbor_findings if f.code == "FM001"}
    assert "'loop.reflection.enabled'" in by_name["USE_REFLECTION"].suggestion
    # a non-bool flag is read with client.value, not is_enabled
    assert "client.value('model.primary')" in by_name["FF_MODEL_PRIMARY"].suggestion
    assert by_name["FALLBACK_LADDER_FLAG"].suggestion == (
        "define a flag in the registry and read it with rc[...]/client.is_enabled(...)"
    )
    assert "(os.environ.get())" in by_name["FALLBACK_LADDER_FLAG"].message
    assert "(in os.environ)" in by_name["USE_REFLECTION"].message


def test_unknown_keys_get_did_you_mean(harbor_findings: list[LintFinding]) -> None:
    fm002 = {f.message.split("'")[1]: f for f in harbor_findings if f.code == "FM002"}
    assert set(fm002) == {
        "model.fallback",
        "loop.max_iteration",
        "tools.refund_api.enabld",
        "tools.kb_serach.enabled",
    }
    assert fm002["model.fallback"].suggestion == "did you mean 'model.fallbacks'?"
    assert fm002["loop.max_iteration"].suggestion == "did you mean 'loop.max_iterations'?"
    assert fm002["tools.kb_serach.enabled"].suggestion.startswith(
        "did you mean 'tools.kb_search.enabled'"
    )
    assert fm002["tools.refund_api.enabld"].suggestion.startswith(f"did you mean {REFUND_KEY!r}")
    assert all(str(FLAGS) in f.message and f.severity == "error" for f in fm002.values())


def test_expired_flag_reads_are_warnings(harbor_findings: list[LintFinding]) -> None:
    fm003 = [f for f in harbor_findings if f.code == "FM003" and f.path != str(FLAGS)]
    assert {f.severity for f in fm003} == {"warning"}
    assert all("'rag.hybrid_search' expired on 2026-06-30" in f.message for f in fm003)


def test_the_noqa_lines_are_silenced(harbor_findings: list[LintFinding]) -> None:
    settings_py, tools_py = HARBOR / "settings.py", HARBOR / "tools.py"
    silenced = {
        ("settings.py", line_of(settings_py, '"DEBUG_TOOLS_ENABLED"')),  # without codes
        ("tools.py", line_of(tools_py, '"ESCALATION_PAGER_ENABLED"')),  # with FM001
    }
    assert not {(rel(f), f.line) for f in harbor_findings if f.path != str(FLAGS)} & silenced
    # without the comments both lines are findings
    for path, line in silenced:
        source = (HARBOR / path).read_text().replace("# flagmw: noqa", "# no")
        assert line in {f.line for f in lint_source(source, path) if f.code == "FM001"}


def test_clean_module_has_no_findings(harbor_registry: FlagRegistry) -> None:
    kb = HARBOR / "kb.py"
    source = kb.read_text()
    # it does read env vars (not toggles) and flags (known keys): the lint had work to do
    assert "os.environ" in source
    assert 'rc.enabled("tools.kb_search.enabled")' in source
    assert lint_source(source, str(kb), harbor_registry, today=TODAY) == []
    assert lint_paths([kb], harbor_registry, today=TODAY)[0].path == str(FLAGS)  # FM003 only


def test_syntax_error_is_one_fm000_and_the_rest_is_checked(
    harbor_findings: list[LintFinding],
) -> None:
    broken = [f for f in harbor_findings if rel_or_none(f) == "legacy/broken.py"]
    assert len(broken) == 1
    (f,) = broken
    assert (f.code, f.severity, f.line) == ("FM000", "error", 7)
    assert "Missing parentheses in call to 'print'" in f.message
    # the ENABLE_REFUND_TOOL read on that line is not reported: the file was not analysed
    assert "ENABLE_REFUND_TOOL" not in f.message


def rel_or_none(f: LintFinding) -> str | None:
    return None if f.path == str(FLAGS) else rel(f)


def test_without_a_registry_only_env_toggles_and_syntax() -> None:
    findings = lint_paths([HARBOR], today=TODAY)
    assert {f.code for f in findings} == {"FM000", "FM001"}
    assert {(rel(f), f.line) for f in findings if f.code == "FM001"} == {
        (p, line)
        for p, line, code in {
            ("settings.py", 10, "FM001"),
            ("settings.py", 11, "FM001"),
            ("settings.py", 12, "FM001"),
            ("tools.py", 17, "FM001"),
            ("workers/billing.py", 11, "FM001"),
            ("workers/billing.py", 15, "FM001"),
            ("workers/billing.py", 19, "FM001"),
        }
    }
    generic = "define a flag in the registry and read it with rc[...]/client.is_enabled(...)"
    assert {f.suggestion for f in findings if f.code == "FM001"} == {generic}


def test_before_any_expiry_there_is_no_fm003(harbor_registry: FlagRegistry) -> None:
    findings = lint_paths([HARBOR], harbor_registry, today=dt.date(2026, 1, 1))
    assert "FM003" not in {f.code for f in findings}
    # the expiry day itself is still valid: "expired" means expires < today
    on_the_day = lint_paths([HARBOR], harbor_registry, today=dt.date(2026, 6, 30))
    assert {f.message.split("'")[1] for f in on_the_day if f.code == "FM003"} == {
        "ux.legacy_banner.enabled"
    }


def test_findings_are_sorted_and_deterministic(
    harbor_registry: FlagRegistry, harbor_findings: list[LintFinding]
) -> None:
    keys = [(f.path, f.line, f.col) for f in harbor_findings]
    assert keys == sorted(keys)
    again = lint_paths([str(HARBOR)], harbor_registry, today=TODAY)
    assert again == harbor_findings


# -- one form at a time ---------------------------------------------------------------------


ENV_FORMS = [
    ('import os\nx = os.environ["ENABLE_X"]\n', "os.environ[...]"),
    ('import os\nx = os.environ.get("ENABLE_X")\n', "os.environ.get()"),
    ('import os\nx = os.environ.get(key="ENABLE_X")\n', "os.environ.get()"),
    ('import os\nx = os.getenv("ENABLE_X", "0")\n', "os.getenv()"),
    ('import os\nx = os.environ.setdefault("ENABLE_X", "1")\n', "os.environ.setdefault()"),
    ('import os\nx = os.environ.pop("ENABLE_X", None)\n', "os.environ.pop()"),
    ('import os\nx = "ENABLE_X" in os.environ\n', "in os.environ"),
    ('import os\nx = "ENABLE_X" not in os.environ\n', "in os.environ"),
    ('import os as o\nx = o.environ["ENABLE_X"]\n', "os.environ[...]"),
    ('from os import environ\nx = environ["ENABLE_X"]\n', "os.environ[...]"),
    ('from os import environ as env\nx = env.get("ENABLE_X")\n', "os.environ.get()"),
    ('from os import getenv\nx = getenv("ENABLE_X")\n', "os.getenv()"),
    ('from os import getenv as ge\nx = ge("ENABLE_X")\n', "os.getenv()"),
    ('import os.path\nx = os.getenv("ENABLE_X")\n', "os.getenv()"),
    ('import os\nE = os.environ\nx = E["ENABLE_X"]\n', "os.environ[...]"),
    ('import os\nN = "ENABLE_X"\nx = os.getenv(N)\n', "os.getenv()"),
    ('import os\nP = "ENABLE"\nx = os.getenv(f"{P}_X")\n', "os.getenv()"),
    ('import os\nP = "ENABLE_"\nx = os.getenv(P + "X")\n', "os.getenv()"),
    ('import os\nx = os.getenv(f"ENABLE_X")\n', "os.getenv()"),  # no placeholder
    ('import os\nx = os.getenv("ENABLE_" "X")\n', "os.getenv()"),
    ('def f():\n    import os\n    return os.getenv("ENABLE_X")\n', "os.getenv()"),
]


@pytest.mark.parametrize(("source", "form"), ENV_FORMS)
def test_each_env_form_is_one_fm001(source: str, form: str) -> None:
    findings = lint_source(source, "m.py")
    assert [(f.code, f.line) for f in findings] == [("FM001", source.count("\n"))]
    assert findings[0].message == (
        f"feature toggle 'ENABLE_X' read from the process environment ({form})"
    )


NOT_ENV = [
    'import os\nx = os.getenv("DATABASE_URL")\n',  # not a toggle name
    'import os\nx = os.environ["HOME"]\n',
    'import os\nx = os.getenv(os.environ["WHICH"])\n',  # a name known only at run time
    'import os\nx = os.getenv(f"ENABLE_{os.getpid()}")\n',
    "import os\nx = os.getenv(f\"{'ENABLE_X'!r}\")\n",  # !r adds quotes: not the literal
    "import os\ndef f(name):\n    return os.environ[name]\n",
    "import os\nx = os.environ.copy()\n",
    'env = {}\nx = env.get("ENABLE_X")\n',  # a dict
    'from os import environ\ndef f(environ):\n    return environ["ENABLE_X"]\n',  # shadowed
    'from os import environ\nf = lambda environ: environ["ENABLE_X"]\n',
    'from os import environ\nclass C:\n    environ = {}\n    x = environ.get("ENABLE_X")\n',
    'from os import environ\nfor environ in [{}]:\n    environ.get("ENABLE_X")\n',
    'import os\nos = object()\nos.getenv("ENABLE_X")\n',  # rebound: not the module any more
    'import os\nN = "ENABLE_X"\ndef f():\n    global N\n    N = input()\nos.getenv(N)\n',
    "import os\nA = B\nB = A\nos.getenv(A)\n",  # a cycle: unknown, and no crash
    'import os\nos.environ["ENABLE_X"] = "1"\n',  # a write, not a read
    "from .os import getenv\ngetenv('ENABLE_X')\n",  # a relative import: not os
    'x = "ENABLE_X"\n# os.getenv("ENABLE_X")\n',  # text, not code
]


@pytest.mark.parametrize("source", NOT_ENV)
def test_not_an_env_toggle_read(source: str) -> None:
    assert lint_source(source, "m.py") == []


def test_scopes_follow_python_rules() -> None:
    source = (
        "from os import environ\n"
        "class C:\n"
        "    environ = {}\n"
        "    def m(self):\n"
        "        return environ['ENABLE_A']\n"  # a method does not see the class body
        "def outer():\n"
        "    import os as e\n"
        "    def inner():\n"
        "        return e.getenv('ENABLE_B')\n"  # the enclosing function's import
        "    return inner\n"
        "def g():\n"
        "    if (n := 'ENABLE_C'):\n"
        "        return environ.get(n)\n"  # walrus constant
    )
    assert [(f.line, f.message.split("'")[1]) for f in lint_source(source)] == [
        (5, "ENABLE_A"),
        (9, "ENABLE_B"),
        (13, "ENABLE_C"),
    ]


def test_columns_are_one_based_characters() -> None:
    source = 'import os\nlabel = "réglage"; on = os.getenv("ENABLE_X")\n'
    (f,) = lint_source(source)
    # findings point at the key: the line to fix when a call spans several lines
    assert f.col == source.splitlines()[1].index('"ENABLE_X"') + 1


def test_noqa_forms() -> None:
    base = 'import os\nx = os.getenv("ENABLE_X")'
    cases = {
        "": 1,
        "  # flagmw: noqa": 0,
        "  # FLAGMW: NOQA": 0,
        "  # flagmw: noqa FM001": 0,
        "  # flagmw: noqa: FM001": 0,
        "  # flagmw: noqa FM002, FM001": 0,
        "  # flagmw: noqa FM002": 1,
        "  # noqa": 1,  # plain flake8/ruff noqa is not ours
        "  # noqa: FM001": 1,
    }
    for comment, expected in cases.items():
        assert len(lint_source(base + comment + "\n")) == expected, comment
    # the marker inside a string is not a comment
    assert len(lint_source('import os\nx = (os.getenv("ENABLE_X"), "# flagmw: noqa")\n')) == 1


# -- flag keys -----------------------------------------------------------------------------

KEY_FORMS = [
    ("from flagmw import gated\n@gated('no.such')\ndef t(): ...\n", 2, "gated()"),
    ("from flagmw.tools import gated\nt = gated(key='no.such')(print)\n", 2, "gated()"),
    ("import flagmw\n@flagmw.gated('no.such')\ndef t(): ...\n", 2, "gated()"),
    ("import flagmw as fm\nm = fm.routed_model({}, flag='no.such')\n", 2, "routed_model(flag=...)"),
    ("def f(rc):\n    return rc['no.such']\n", 2, "rc[...]"),
    ("def f(rc):\n    return rc.get('no.such', 1)\n", 2, "rc.get()"),
    ("def f(rc):\n    return rc.get_as('no.such', dict)\n", 2, "rc.get_as()"),
    ("def f(state):\n    return state.rc['no.such']\n", 2, "rc[...]"),
    (
        "import flagmw\ndef f():\n    cfg = flagmw.current()\n    return cfg['no.such']\n",
        4,
        "rc[...]",
    ),
    ("from flagmw import current\nx = current(optional=True).get('no.such')\n", 2, "rc.get()"),
    ("from flagmw.run import current\nx = current()['no.such']\n", 2, "rc[...]"),
    ("def f(client, ctx):\n    c = client.resolve(ctx)\n    return c['no.such']\n", 3, "rc[...]"),
    (
        "from flagmw import RunConfig\ndef f(x: RunConfig | None):\n    return x['no.such']\n",
        3,
        "rc[...]",
    ),
    (
        "from typing import Optional\nfrom flagmw import RunConfig\n"
        "def f(x: 'Optional[RunConfig]'):\n    return x['no.such']\n",
        4,
        "rc[...]",
    ),
    ("from flagmw import RunConfig\nx = RunConfig.from_json('{}')['no.such']\n", 2, "rc[...]"),
    ("x = anything.is_enabled('no.such')\n", 1, ".is_enabled()"),
    ("x = anything.enabled('no.such')\n", 1, ".enabled()"),
    ("x = is_enabled('no.such')\n", 1, "is_enabled()"),
    ("x = client.value('no.such')\n", 1, "client.value()"),
    ("x = self.flag_client.explain('no.such')\n", 1, "client.explain()"),
    ("client.kill('no.such', reason='r', actor='a')\n", 1, "client.kill()"),
    ("client.override(key='no.such', value=1, reason='r', actor='a')\n", 1, "client.override()"),
    (
        "from flagmw import FlagClient\nfc = FlagClient(r, s)\nfc.value('no.such')\n",
        3,
        "client.value()",
    ),
    (
        "from flagmw import FlagClient\ndef f(fc: FlagClient):\n    fc.kill('no.such')\n",
        3,
        "client.kill()",
    ),
]


@pytest.mark.parametrize(("source", "line", "form"), KEY_FORMS)
def test_each_key_form_is_checked(
    source: str, line: int, form: str, registry: FlagRegistry
) -> None:
    findings = lint_source(source, "m.py", registry)
    assert [(f.code, f.line) for f in findings] == [("FM002", line)]
    assert findings[0].message.startswith(f"unknown flag key 'no.such' in {form}:")
    # the same code with a key the registry defines is clean
    fixed = source.replace("no.such", "model.primary")
    assert lint_source(fixed, "m.py", registry) == []


NOT_KEYS = [
    "d = {}\nx = d.get('no.such')\n",  # a dict
    "x = config['no.such']\n",  # not a RunConfig name
    "import requests\nx = requests.get('no.such')\n",
    "x = db.explain('SELECT 1')\n",  # explain on something that is not a client
    "x = proc.kill('no.such')\n",
    "x = client.variant('style-v3-rollout')\n",  # experiment names are not flag keys
    "def current():\n    return {}\nx = current()['no.such']\n",  # not flagmw's current
    "from pathlib import Path\np = Path('.').resolve()\nx = p.get('no.such')\n",
    "x = gated('no.such')\n",  # a gated() that is not flagmw's
    "def f(rc, key):\n    return rc[key]\n",  # not a literal
]


@pytest.mark.parametrize("source", NOT_KEYS)
def test_not_a_flag_key_use(source: str, registry: FlagRegistry) -> None:
    assert lint_source(source, "m.py", registry) == []


def test_key_suggestions_come_from_the_registry(registry: FlagRegistry) -> None:
    (typo,) = lint_source("def f(rc):\n    return rc['model.primray']\n", "m.py", registry)
    assert typo.suggestion == "did you mean 'model.primary'?"
    (far,) = lint_source("def f(rc):\n    return rc['zzz.qqq']\n", "m.py", registry)
    assert far.suggestion == "define 'zzz.qqq' in the registry (<document>) or fix the key"


def test_expired_flag_in_a_python_registry() -> None:
    registry = FlagRegistry(
        [
            Flag("old.switch", "bool", False, expires="2024-01-01"),
            Flag("gone.switch", "bool", False, expires="2024-01-01"),
            Flag("live.switch", "bool", True),
        ]
    )
    source = "def f(rc):\n    return rc.enabled('old.switch') and rc['live.switch']\n"
    findings = lint_source(source, "m.py", registry, today=dt.date(2025, 1, 1))
    assert [(f.code, f.line, f.severity) for f in findings] == [("FM003", 2, "warning")]
    assert findings[0].suggestion == (
        "remove this read and then the flag from <python>, or move its expires date"
    )


def test_expired_and_unread_flag_is_reported_once_at_the_registry(tmp_path: Path) -> None:
    registry = FlagRegistry([Flag("gone.switch", "bool", False, expires="2024-01-01")])
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    findings = lint_paths([tmp_path], registry, today=dt.date(2025, 1, 1))
    assert [(f.path, f.line, f.code) for f in findings] == [("<python>", 0, "FM003")]
    # read (even on a noqa line) anywhere: no registry finding, the read is silenced
    (tmp_path / "b.py").write_text("def f(rc):\n    return rc['gone.switch']  # flagmw: noqa\n")
    assert lint_paths([tmp_path], registry, today=dt.date(2025, 1, 1)) == []


# -- paths, files and the finding type ---------------------------------------------------


def test_directories_skip_virtualenvs_caches_and_hidden(tmp_path: Path) -> None:
    toggle = 'import os\nX = os.getenv("ENABLE_X")\n'
    app = tmp_path / "app"
    for rel_path in [
        "main.py",
        "pkg/mod.py",
        ".venv/lib/x.py",
        "venv/lib/x.py",
        "lib/site-packages/x.py",
        "__pycache__/x.py",
        ".git/hooks/x.py",
        "node_modules/x.py",
        ".hidden/x.py",
        "notes.txt",
        "script",
    ]:
        (app / rel_path).parent.mkdir(parents=True, exist_ok=True)
        (app / rel_path).write_text(toggle)
    found = [Path(f.path).relative_to(app).as_posix() for f in lint_paths([app])]
    assert found == ["main.py", "pkg/mod.py"]
    # named explicitly, a file is linted whatever its name; a hidden root is entered
    explicit = lint_paths([app / "script", app / ".hidden"])
    assert [Path(f.path).relative_to(app).as_posix() for f in explicit] == [
        ".hidden/x.py",
        "script",
    ]


def test_each_file_is_linted_once_and_a_lone_path_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text('import os\nX = os.getenv("ENABLE_X")\n')
    assert len(lint_paths([tmp_path, tmp_path / "m.py", tmp_path])) == 1
    assert len(lint_paths(str(tmp_path))) == 1  # a str is a Sequence[str]: not split


def test_unreadable_inputs_are_fm000_not_crashes(tmp_path: Path) -> None:
    (tmp_path / "latin.py").write_bytes(b'x = "caf\xe9"\n')  # not UTF-8, no coding cookie
    (tmp_path / "nul.py").write_bytes(b"x = 1\x00\n")
    (tmp_path / "cookie.py").write_bytes(b"# -*- coding: klingon -*-\nx = 1\n")
    (tmp_path / "ok.py").write_text('import os\nX = os.getenv("ENABLE_X")\n')
    findings = lint_paths([tmp_path, tmp_path / "missing"])
    assert [(Path(f.path).name, f.code) for f in findings] == [
        ("cookie.py", "FM000"),
        ("latin.py", "FM000"),
        ("missing", "FM000"),
        ("nul.py", "FM000"),
        ("ok.py", "FM001"),
    ]
    assert findings[2].message == "no such file or directory"
    assert {f.severity for f in findings} == {"error"}


def test_a_coding_cookie_is_honoured(tmp_path: Path) -> None:
    source = '# -*- coding: latin-1 -*-\nimport os\nlabel = "é"; X = os.getenv("ENABLE_X")\n'
    (tmp_path / "m.py").write_bytes(source.encode("latin-1"))
    (f,) = lint_paths([tmp_path / "m.py"])
    assert (f.code, f.line, f.col) == ("FM001", 3, source.splitlines()[2].index('"EN') + 1)


def test_finding_text_dict_and_immutability() -> None:
    (f,) = lint_source('import os\nX = os.getenv("USE_X")\n', "app/m.py")
    assert str(f) == (
        "app/m.py:2:15 FM001 feature toggle 'USE_X' read from the process environment "
        "(os.getenv()) (define a flag in the registry and read it with "
        "rc[...]/client.is_enabled(...))"
    )
    data = f.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert LintFinding(**data) == f
    assert str(dataclasses.replace(f, suggestion="")).endswith("(os.getenv())")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.line = 3  # type: ignore[misc]
    assert set(CODES) == {"FM000", "FM001", "FM002", "FM003", "FM004"}


# -- the registry suggestion for an env var ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("REFUND_TOOL_ENABLED", REFUND_KEY),
        ("ENABLE_REFUND_TOOL", REFUND_KEY),
        ("refund_tools_enabled", REFUND_KEY),
        ("DISABLE_REFUND_TOOL", REFUND_KEY),
        ("FF_TOOLS_REFUND_API_ENABLED", REFUND_KEY),  # flagmw's own FF_<KEY> name, exactly
        ("FF_MODEL_PRIMARY", "model.primary"),
        ("USE_REFLECTION", "loop.reflection.enabled"),
        ("FEATURE_HYBRID_SEARCH", "rag.hybrid_search"),
        ("ENABLE_KB_SERACH", "tools.kb_search.enabled"),  # fuzzy word match
        ("ENABLE_NEW_CHECKOUT", None),
        ("FALLBACK_LADDER_FLAG", None),  # one word of two is not enough
        ("ENABLE_", None),
        ("FEATURE_FLAG_ENABLED", None),  # only marker words
    ],
)
def test_suggest_flag_for_env(name: str, key: str | None, harbor_registry: FlagRegistry) -> None:
    assert suggest_flag_for_env(name, harbor_registry) == key


def test_suggest_flag_for_env_does_not_settle_for_a_weak_match() -> None:
    only_kb = FlagRegistry([Flag("tools.kb_search.enabled", "bool", True)])
    assert suggest_flag_for_env("REFUND_TOOL_ENABLED", only_kb) is None
    assert suggest_flag_for_env("REFUND_TOOL_ENABLED", None) is None
    assert suggest_flag_for_env("REFUND_TOOL_ENABLED", FlagRegistry([])) is None


# -- properties ------------------------------------------------------------------------------


#: The patterns as documented in docs/lint.md and issue 2 (written out here, not
#: taken from flagmw.lint, so a change to either side is caught).
DOCUMENTED_PATTERNS = (
    "ENABLE_*",
    "*_ENABLED",
    "*_ENABLE",
    "DISABLE_*",
    "*_DISABLED",
    "FF_*",
    "USE_*",
    "FEATURE_*",
    "*_FLAG",
    "FLAG_*",
)


def documented_toggle(name: str) -> bool:
    """The rule as documented: a case-insensitive glob match with one of the patterns
    (``fnmatch`` is the oracle; the implementation uses one regular expression)."""
    return any(fnmatch.fnmatchcase(name.upper(), p) for p in DOCUMENTED_PATTERNS)


def test_the_patterns_are_the_documented_ones() -> None:
    assert set(TOGGLE_PATTERNS) == set(DOCUMENTED_PATTERNS)
    docs = (Path(__file__).parent.parent / "docs" / "lint.md").read_text()
    assert all(f"`{p}`" in docs for p in DOCUMENTED_PATTERNS)


WORDS = [
    "ENABLE", "ENABLED", "ENABLEMENT", "DISABLE", "DISABLED", "FF", "FFX", "USE", "USER",
    "USED", "FEATURE", "FEATURES", "FLAG", "FLAGS", "REFUND", "TOOL", "X", "",
]  # fmt: skip


@st.composite
def env_names(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,24}", fullmatch=True))
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
    name = draw(st.sampled_from(["_", "__", ""])).join(words)
    mask = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.lower() if low else c for c, low in zip(name, mask, strict=True))


@given(env_names())
def test_property_flagged_iff_documented_pattern(name: str) -> None:
    assert is_toggle_name(name) == documented_toggle(name)
    findings = lint_source(f"import os\nvalue = os.environ.get({name!r})\n")
    assert [f.message.split("'")[1] for f in findings] == (
        [name] if documented_toggle(name) else []
    )


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_property_any_text_gives_findings_never_an_exception(source: str) -> None:
    findings = lint_source(source, "fuzz.py")
    assert all(isinstance(f, LintFinding) and f.code in CODES for f in findings)
    if any(f.code == "FM000" for f in findings):
        assert len(findings) == 1


# -- flagmw itself ---------------------------------------------------------------------------


def test_flagmw_itself_reads_no_toggle_from_the_environment(registry: FlagRegistry) -> None:
    package = Path(flagmw.__file__).parent
    example = package.parent / "examples" / "support_agent" / "flags.yaml"
    reg = FlagRegistry.from_yaml(example) if example.is_file() else registry
    # client/env.py read_env_values reads FF_<KEY> variables, with names built at run time
    assert "env_var_name(flag.key)" in (package / "client" / "env.py").read_text()
    findings = lint_paths([package], reg)
    assert [str(f) for f in findings if f.code in ("FM000", "FM001")] == []
