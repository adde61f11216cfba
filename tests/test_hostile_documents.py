"""Hostile and malformed flags files (issue 9 items 3-6): every one is a located, clear
error through the CLI (``validate``, ``publish``) and the API (``client.publish``), with no
traceback and the store byte-identical afterwards. Bounded resources: alias bombs, deep
nesting and endless files are refused by a limit that names its variable (a child process
with a timeout guards against a hang)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagmw import FlagClient, FlagRegistry, SQLiteStore, ValidationError
from flagmw.core.source import load_text

BASE = """\
flags:
  prompt.style: {type: enum, choices: [v2, v3], default: v2, owner: t}
  loop.max: {type: int, default: 3, min: 1, max: 10, owner: t}
  loop.ratio: {type: float, default: 0.5, owner: t}
  cfg.x: {type: json, default: {}, owner: t}
"""

_BOMB = "flags: {}\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)

#: name → (file name, content, expected text in the message)
CORPUS: dict[str, tuple[str, str, str]] = {
    "alias bomb": ("bomb.yaml", _BOMB, "FLAGMW_MAX_ALIAS_NODES"),
    "deep json": ("deep.json", "[" * 10000 + "]" * 10000, "FLAGMW_MAX_DEPTH"),
    "deep yaml": ("deep.yaml", "a: " + "[" * 10000 + "]" * 10000, "nesting depth"),
    "deep yaml under libyaml's limit": (
        "deep2.yaml",
        "values: " + "[" * 200 + "]" * 200,
        "FLAGMW_MAX_DEPTH",
    ),
    "python tag": (
        "tag.yaml",
        'values: !!python/object/apply:os.system ["echo pwned"]',
        "YAML tag",
    ),
    "set tag": ("set.yaml", "values: !!set {a, b}", "YAML tag"),
    "binary tag": ("bin.yaml", "values: {cfg.x: !!binary aGVsbG8=}", "YAML tag"),
    "custom tag": ("custom.yaml", "values: {loop.max: !env LOOP}", "YAML tag"),
    "merge key": ("merge.yaml", "base: &b {loop.max: 1}\nvalues:\n  <<: *b\n", "merge keys"),
    "impossible date": (
        "date.yaml",
        "flags:\n  old.flag: {type: bool, default: true, owner: t, expires: 2027-02-30}\n",
        "day is out of range",
    ),
    "5001-digit int": ("bigint.yaml", f"values: {{loop.max: {'9' * 5001}}}", "loop.max"),
    "10**400 in json": ("bigint.json", '{"values": {"loop.max": 1' + "0" * 400 + "}}", "loop.max"),
    "1e400 in json": ("bigfloat.json", '{"values": {"loop.ratio": 1e400}}', "loop.ratio"),
    "NaN in json": ("nan.json", '{"values": {"loop.ratio": NaN}}', "NaN is not a JSON number"),
    "nan in yaml": ("nan.yaml", "values: {loop.ratio: .nan}", "finite"),
    "a list": ("list.yaml", "- a\n- b\n", "not a list"),
    "a string naming a file": ("str.json", '"flags.yaml"', "not a string"),
    "a surrogate value": ("sur.json", '{"values": {"prompt.style": "\\ud800"}}', "prompt.style"),
    "a surrogate key": ("surk.json", '{"values": {"\\udc80x": 1}}', "values"),
    "not UTF-8": ("latin.yaml", "values: {prompt.style: v\xe9}", "UTF-8"),
    "rules as a mapping": ("rules.yaml", "rules: {}", "rules"),
    "experiments as a list": ("exps.yaml", "experiments: []", "experiments must be a mapping"),
}


def _write(path: Path, content: str) -> None:
    if path.name == "latin.yaml":
        path.write_bytes(content.encode("latin-1"))
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    (d / "flags.yaml").write_text(BASE)
    store = SQLiteStore(d / "flagmw.db", create=True)
    client = FlagClient(FlagRegistry.from_yaml(d / "flags.yaml"), store)
    client.publish({"values": {"loop.max": 4}}, author="t", message="first")
    client.close()
    for name, content, _ in CORPUS.values():
        _write(d / name, content)
    return d


def _flagmw(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("flagmw")
    run = [str(script)] if script.is_file() else [sys.executable, "-m", "flagmw.cli.app"]
    return subprocess.run(
        [*run, "--registry", "flags.yaml", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        errors="replace",
    )


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_the_cli_refuses_each_hostile_file_with_a_located_error_and_changes_nothing(
    case: str, cli_dir: Path
) -> None:
    name, _, expected = CORPUS[case]
    before = (cli_dir / "flagmw.db").read_bytes()
    for cmd in (["validate", name], ["publish", name, "-m", "x"]):
        done = _flagmw(cli_dir, *cmd)
        out = done.stdout + done.stderr
        assert done.returncode == 1, (case, cmd, out)
        assert name in out  # located: the file (and its line for YAML)
        assert expected in out, (case, out)
        assert "Traceback" not in out
        assert "internal error" not in out
    assert (cli_dir / "flagmw.db").read_bytes() == before


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_the_api_refuses_each_hostile_file(case: str, cli_dir: Path, tmp_path: Path) -> None:
    name, _, expected = CORPUS[case]
    registry = FlagRegistry.from_yaml(cli_dir / "flags.yaml")
    with SQLiteStore(tmp_path / "s.db", create=True) as store:
        client = FlagClient(registry, store)
        with pytest.raises(ValidationError) as err:
            client.publish(cli_dir / name, author="t", message="x")
        assert expected in str(err.value) or any(expected in str(p) for p in err.value.problems)
        assert store.head() is None


def test_an_empty_file_is_the_empty_snapshot_through_validate_and_publish(tmp_path: Path) -> None:
    (tmp_path / "flags.yaml").write_text(BASE)
    (tmp_path / "empty.yaml").write_text("")
    assert _flagmw(tmp_path, "init").returncode == 0
    assert _flagmw(tmp_path, "publish", "flags.yaml", "-m", "first").returncode == 0
    done = _flagmw(tmp_path, "validate", "empty.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _flagmw(tmp_path, "publish", "empty.yaml", "-m", "empty")
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_endless_file_is_refused_by_the_size_limit(tmp_path: Path) -> None:
    (tmp_path / "flags.yaml").write_text(BASE)
    done = _flagmw(tmp_path, "validate", "/dev/zero")
    assert done.returncode == 1
    assert "FLAGMW_MAX_FILE_BYTES" in done.stderr


def test_the_limits_are_raised_by_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = "values: " + "[" * 70 + "]" * 70
    with pytest.raises(ValidationError, match="FLAGMW_MAX_DEPTH"):
        load_text(doc, "d.yaml")
    monkeypatch.setenv("FLAGMW_MAX_DEPTH", "100")
    load_text(doc, "d.yaml")
    monkeypatch.setenv("FLAGMW_MAX_DEPTH", "not a number")  # ignored: never lifts a limit
    with pytest.raises(ValidationError, match="FLAGMW_MAX_DEPTH"):
        load_text(doc, "d.yaml")
    monkeypatch.setenv("FLAGMW_MAX_FILE_BYTES", "10")
    with pytest.raises(ValidationError, match="larger than 10 bytes"):
        load_text("values: {a: 1}", "d.yaml")


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec=None), max_size=200))
def test_the_loader_never_fails_but_with_a_validation_error(text: str) -> None:
    for fmt in ("yaml", "json"):
        with contextlib.suppress(ValidationError):
            load_text(text, f"f.{fmt}", fmt=fmt)


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_the_validator_never_fails_but_with_a_validation_error(data: object) -> None:
    from flagmw.core.snapshot import validate_document
    from flagmw.core.source import Locator

    registry = FlagRegistry.from_dict(load_text(BASE, "flags.yaml")[0])
    conditions = {"rules": [{"name": "r", "when": data, "set": {"loop.max": 2}}]}
    for doc in (
        data,
        {"values": data},
        {"tenants": {"acme": data}},
        {"rules": data},
        conditions,  # the condition compiler
        {"segments": {"s": data}},
        {"experiments": {"e": data}},
    ):
        with contextlib.suppress(ValidationError):
            validate_document(doc, registry, locator=Locator("<fuzz>"))  # type: ignore[arg-type]


def test_registry_fields_are_strictly_typed() -> None:
    """Issue 9 item 8: `min: "1"`, `protected: "yes"` are problems, never coerced."""
    for field, bad, needle in (
        ("min", "1", "valid integer"),
        ("max", True, "valid integer"),
        ("protected", "yes", "valid boolean"),
        ("run_kill", 1, "valid boolean"),
        ("owner", 7, "valid string"),
        ("tags", ["a", 2], "valid string"),
    ):
        spec = {"type": "int" if field in ("min", "max") else "bool", "default": 1, "owner": "t"}
        if spec["type"] == "bool":
            spec["default"] = True
        spec[field] = bad
        with pytest.raises(ValidationError, match=needle):
            FlagRegistry.from_dict({"flags": {"a.b": spec}})
