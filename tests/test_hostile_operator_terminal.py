"""Terminal safety (issue 9 item 7): reasons, actors, tenants, authors, messages, values
and ids holding escape sequences — clear screen, OSC 8 hyperlinks, an OSC window title,
bidi overrides, hidden text — are shown escaped (``\\x1b`` as the four characters
``\\x1b``) in every command's human output, and exactly with ``--json``.

The commands run as real OS processes on a real SQLite store; their output is decoded as
strict UTF-8 and every character checked.
"""

from __future__ import annotations

import ast
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hostile_operator_cli import FLAGS, Run, cli, env, project
from hypothesis import given
from hypothesis import strategies as st

from flagmw.cli import output

#: Everything a terminal must never receive raw, in one string.
HOSTILE = (
    "\x1b[2J\x1b[H"  # clear screen, cursor home
    "\x1b]0;pwned\x07"  # window title
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8 hyperlink
    "\x1b[8mhidden\x1b[0m"  # concealed text
    "\u202eevil\u2066"  # bidi override and isolate
    "\x9b31m"  # 8-bit CSI
    "\U000e0041\u200b"  # an invisible tag character, a zero-width space
    "\r\x08\x7f"  # carriage return, backspace, DEL
)
#: How the start of HOSTILE looks once escaped.
SHOWN = "\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07"


def unsafe(text: str) -> list[str]:
    """The characters of ``text`` that a terminal must not receive."""
    return [
        ch
        for ch in text
        if ch != "\n" and not ch.isprintable() and unicodedata.category(ch) != "Zs"
    ]


def strings(doc: Any) -> list[str]:
    """Every string in a JSON document (keys and values)."""
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in [k, *strings(v)]]
    if isinstance(doc, list):
        return [s for item in doc for s in strings(item)]
    return []


def assert_safe(run: Run) -> None:
    assert not unsafe(run.out), (unsafe(run.out), run.out)
    assert not unsafe(run.err), (unsafe(run.err), run.err)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose every human-facing field holds HOSTILE: a kill (reason, actor), an
    override (a string value), an ended kill (end reason), a publish (author, message).
    Tenants and routes are the snapshot's own (a kill for an unknown one may need
    --force); a hostile tenant is shown through ``explain --tenant``."""
    folder = project(tmp_path_factory.mktemp("terminal"))
    hostile_env = env(FLAGMW_ACTOR=HOSTILE)
    steps: list[tuple[str, ...]] = [
        ("kill", "tools.refund.enabled", "--reason", HOSTILE, "--tenant", "acme"),
        ("override", "prompt.note", HOSTILE, "--reason", HOSTILE),
        ("kill", "tools.refund.enabled", "--reason", HOSTILE),
        ("unkill", "ov-3", "--reason", HOSTILE),
    ]
    for step in steps:
        done = cli(folder, *step, environ=hostile_env)
        assert done.code == 0, done.err
    doc = (folder / "flags.yaml").read_text().replace("loop.max: 4", "loop.max: 5")
    (folder / "v2.yaml").write_text(doc)
    done = cli(folder, "publish", "v2.yaml", "-m", HOSTILE, "--author", HOSTILE)
    assert done.code == 0, done.err
    return folder


#: Each command with what it must show escaped.
COMMANDS: list[tuple[str, ...]] = [
    ("overrides",),
    ("overrides", "--all"),
    ("audit",),
    ("history",),
    ("explain", "tools.refund.enabled", "--tenant", HOSTILE),
    ("explain", "prompt.note", "--user", HOSTILE, "--attr", f"note={HOSTILE}"),
    ("diff", "1", "2"),
    ("status",),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a)[:30])
def test_human_output_shows_escape_sequences_escaped(folder: Path, args: tuple[str, ...]) -> None:
    done = cli(folder, *args)
    assert done.code in (0, 1), done.err
    assert_safe(done)
    if args[0] != "diff" and args[0] != "status":
        assert SHOWN in done.out, done.out


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a)[:30])
def test_json_output_is_exact_and_still_terminal_safe(folder: Path, args: tuple[str, ...]) -> None:
    done = cli(folder, *args, "--json")
    assert done.code in (0, 1), done.err
    assert_safe(done)  # the characters are there, as JSON \\uXXXX escapes
    if args[0] not in ("diff", "status"):
        assert any(HOSTILE in text for text in strings(json.loads(done.out)))


def test_the_lines_of_kill_override_and_unkill_are_escaped(tmp_path: Path) -> None:
    folder = project(tmp_path)
    hostile_env = env(FLAGMW_ACTOR=HOSTILE)
    runs = [
        cli(folder, "kill", "tools.refund.enabled", "--reason", HOSTILE, environ=hostile_env),
        cli(folder, "override", "prompt.note", HOSTILE, "--reason", HOSTILE, "--tenant", "acme"),
        cli(folder, "renew", "ov-1", "--reason", HOSTILE),
        cli(folder, "unkill", "ov-2", "--reason", HOSTILE + "\nended ov-9: a fake line"),
    ]
    for done in runs:
        assert done.code == 0, done.err
        assert_safe(done)
    assert f"reason: {SHOWN}" in runs[0].out
    assert f"actor: {SHOWN}" in runs[0].out
    assert SHOWN in runs[1].out  # the value
    # a newline in a reason cannot fake a line of its own
    assert len(runs[3].out.splitlines()) == 1
    assert "\\nended ov-9: a fake line" in runs[3].out
    exact = cli(folder, "overrides", "--all", "--json")
    reasons = {o["reason"] for o in json.loads(exact.out)["overrides"]}
    assert HOSTILE in reasons


def test_error_lines_are_escaped(tmp_path: Path) -> None:
    folder = project(tmp_path)
    runs = [
        cli(folder, "kill", HOSTILE, "--reason", "r"),  # unknown flag, from the library
        cli(folder, "explain", HOSTILE),
        cli(folder, "history", HOSTILE),  # a usage error, from typer
        cli(folder, "--store", HOSTILE + ".db", "audit"),  # a missing store
        cli(folder, "kill", "tools.refund.enabled", "--reason", "r", "--ttl", HOSTILE),
        cli(folder, "validate", HOSTILE),
    ]
    for done in runs:
        assert done.code != 0
        assert_safe(done)
        assert done.err_lines[-1].startswith("flagmw: error: "), done.err
        assert "\\x1b" in done.err, done.err


def test_the_console_backstop_escapes_text_built_elsewhere(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A ``rich.text.Text`` made without :func:`output.styled` (which bypasses the
    console's string hook) is still escaped on its way out."""
    from rich.text import Text

    t = output.table("a", "b")
    t.add_row(HOSTILE, Text(HOSTILE))
    out = output.console()
    out.print(t)
    out.print(Text(HOSTILE, style="bold"), HOSTILE)
    captured = capsys.readouterr().out
    assert not unsafe(captured), unsafe(captured)
    assert SHOWN in captured


def test_no_cli_module_writes_to_a_stream_but_the_output_module() -> None:
    """The one way out is ``flagmw/cli/output.py``: no other CLI module prints, echoes,
    builds a rich Console or writes to ``sys.stdout`` / ``sys.stderr`` itself."""
    import flagmw.cli

    forbidden: list[str] = []
    for path in sorted(Path(flagmw.cli.__file__).parent.glob("*.py")):
        if path.name == "output.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("stdout", "stderr")
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                forbidden.append(f"{path.name}:{node.lineno} sys.{node.attr}")
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                writes = name in ("print", "echo", "secho", "Console", "print_exc")
                # ``out.print(...)``: a method of the console output.console() made
                if writes and not (isinstance(func, ast.Attribute) and name == "print"):
                    forbidden.append(f"{path.name}:{node.lineno} {name}()")
    assert forbidden == []


# -- the sanitiser itself ------------------------------------------------------------------


@given(st.text(alphabet=st.characters(codec=None)))
def test_printable_leaves_nothing_unsafe_and_printable_text_alone(text: str) -> None:
    shown = output.printable(text)
    assert not unsafe(shown)
    shown.encode("utf-8")  # no lone surrogate left
    if not unsafe(text) and "\n" not in text:
        assert shown is text
    kept = output.printable(text, newlines=True)
    assert kept.count("\n") == text.count("\n")


def _json_data() -> st.SearchStrategy[Any]:
    text = st.text(alphabet=st.characters(codec=None))
    return st.recursive(
        st.none() | st.booleans() | st.integers() | text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12,
    )


@given(_json_data())
def test_json_output_parses_back_to_the_same_data_and_is_terminal_safe(data: Any) -> None:
    text = output.json_text(data)
    assert not unsafe(text)
    assert json.loads(text) == data


def test_write_json_and_write_lines(capsys: pytest.CaptureFixture[str]) -> None:
    output.write_json({"reason": HOSTILE})
    output.write_lines([HOSTILE, "plain"], stderr=True)
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"reason": HOSTILE}
    assert not unsafe(captured.out)
    assert captured.err.splitlines() == [output.printable(HOSTILE), "plain"]
    assert not unsafe(captured.err)


def test_the_human_output_is_valid_utf8_even_with_a_surrogate(tmp_path: Path) -> None:
    """A strict UTF-8 stdout (PYTHONIOENCODING) cannot take a lone surrogate: escaped
    first, so nothing fails on the way out."""
    folder = project(tmp_path)
    strict = env(PYTHONIOENCODING="utf-8:strict")
    for extra in ((), ("--json",)):
        done = cli(folder, "explain", "prompt.style", "--user", b"\xff\x1b", *extra, environ=strict)
        assert done.code == 0, done.err
        assert_safe(done)


# -- commands that show other people's documents and checkpoints ----------------------------


def test_resolve_at_and_validate_show_hostile_content_escaped(tmp_path: Path) -> None:
    folder = project(tmp_path)
    bad = folder / "bad.json"
    # a value of the wrong type, holding escape sequences, reported in the problems table
    # (JSON: a YAML double-quoted string cannot hold the surrogate-pair escape json.dumps
    # writes for U+E0041; libyaml rightly refuses it)
    bad.write_text(json.dumps({"values": {"loop.max": HOSTILE}}), encoding="utf-8")
    runs = [
        cli(folder, "resolve", "--at", "2100-01-01T00:00:00Z", "--user", HOSTILE),
        cli(folder, "validate", "bad.json"),
        cli(folder, "publish", "bad.json", "-m", "x"),
    ]
    for done in runs:
        assert done.code in (0, 1), done.err
        assert "Traceback" not in done.err
        assert_safe(done)
        assert SHOWN in done.out + done.err


def test_pin_show_escapes_what_a_checkpoint_holds(tmp_path: Path) -> None:
    """A checkpoint database is not trusted: ids pinned from a run's config (valid text,
    escape sequences and all) are shown escaped by ``flagmw pin show``."""
    import sqlite3
    from typing import TypedDict

    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import START, StateGraph

    import flagmw
    from flagmw import FlagClient, FlagRegistry, MemoryStore

    class S(TypedDict, total=False):
        out: str

    builder = StateGraph(S)
    builder.add_node("n", lambda state: {"out": str(flagmw.current()["loop.max"])})
    builder.add_edge(START, "n")
    client = FlagClient(FlagRegistry.from_dict({"flags": FLAGS}), MemoryStore())
    conn = sqlite3.connect(tmp_path / "cp.db", check_same_thread=False)
    graph = flagmw.wrap(builder.compile(checkpointer=SqliteSaver(conn)), client)
    conf = {"thread_id": "t-1", "user_id": HOSTILE, "tenant_id": HOSTILE, "note": HOSTILE}
    graph.invoke({}, {"configurable": conf})
    conn.close()
    for extra in ((), ("--json",)):
        done = cli(tmp_path, "pin", "show", "--checkpointer", "cp.db", "--thread", "t-1", *extra)
        assert done.code == 0, done.err
        assert_safe(done)
    assert SHOWN in cli(tmp_path, "pin", "show", "--checkpointer", "cp.db", "--thread", "t-1").out
