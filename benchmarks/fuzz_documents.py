"""Fuzz the document entry points for a bounded time (issue 9): the YAML / JSON loader,
the registry loader, the snapshot validator, the condition compiler and the duration
parser, fed arbitrary text, mutated valid flags files and arbitrary JSON-like data. Any
exception other than the documented ones (``ValidationError``; ``ValueError`` from the
duration parser) is a finding: it is printed with its input and the run exits 1.

    .venv/bin/python -m benchmarks.fuzz_documents [--seconds 60]

Not part of the test suite (the suite runs the same properties with a small example
count: ``tests/test_hostile_documents.py``); run it after changing the loader or the
validator. Findings of its first runs (fixed): a lone surrogate handed to the libyaml
composer raised ``UnicodeEncodeError``; a JSON document with a surrogate-pair escape in a
YAML file is refused by libyaml (a located syntax error, by design).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagmw.core.overrides import parse_duration
from flagmw.core.registry import FlagRegistry
from flagmw.core.snapshot import validate_document
from flagmw.core.source import Locator, load_text
from flagmw.errors import ValidationError

BASE = """\
flags:
  prompt.style: {type: enum, choices: [v2, v3], default: v2, owner: t}
  loop.max: {type: int, default: 3, min: 1, max: 10, owner: t}
  cfg.x: {type: json, default: {}, owner: t, schema: {type: object}}
segments:
  big: {seats: {gt: 10}}
rules:
  - name: r1
    when: {plan: {in: [pro]}, segment: big}
    rollout: {percent: 25, unit: user, salt: s}
    set: {prompt.style: v3}
tenants:
  acme: {values: {loop.max: 4}}
experiments:
  e1: {flag: prompt.style, unit: user, variants: {a: v2, b: v3}, weights: {a: 50, b: 50}}
"""
REGISTRY = FlagRegistry.from_dict(load_text(BASE, "base.yaml")[0])
FINDINGS: list[tuple[str, Any, str]] = []

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=40,
)


def _check(name: str, value: Any, fn: Any, allowed: tuple[type[BaseException], ...]) -> None:
    try:
        fn()
    except allowed:
        pass
    except Exception:
        FINDINGS.append((name, value, traceback.format_exc(limit=6)))


def _mutate(seed: int) -> str:
    rnd = random.Random(seed)
    text = list(BASE)
    for _ in range(rnd.randint(1, 8)):
        i = rnd.randrange(len(text))
        op = rnd.random()
        if op < 0.4:
            del text[i]
        elif op < 0.8:
            text.insert(i, rnd.choice("{}[]:,&*!|>-'\"#\\\n \t0x.eE\ud800\x1b"))
        else:
            text[i : i + 3] = rnd.choice(["&a", "*a", "!!set", "<<:", "1e400", "2027-02-30"])
    return "".join(text)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=st.characters(codec=None), max_size=300), st.integers(0, 2**32))
def _texts(text: str, seed: int) -> None:
    for fmt in ("yaml", "json"):
        _check(
            f"load_text({fmt})",
            text,
            lambda fmt=fmt: load_text(text, f"f.{fmt}", fmt=fmt),
            (ValidationError,),
        )
    mutated = _mutate(seed)
    _check("validate(mutated)", mutated, lambda: _validate_text(mutated), (ValidationError,))
    _check("parse_duration", text, lambda: parse_duration(text), (ValueError,))


def _validate_text(text: str) -> None:
    data, loc = load_text(text, "m.yaml")
    if isinstance(data, dict) and "flags" in data:
        FlagRegistry.from_dict(data, locator=loc)
    validate_document(data, REGISTRY, locator=loc)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(_json)
def _data(data: Any) -> None:
    loc = Locator("<fuzz>")
    for doc in (
        data,
        {"values": data},
        {"rules": [{"name": "r", "when": data, "set": {"loop.max": 2}}]},
        {"segments": {"s": data}},
        {"experiments": {"e": data}},
        {"tenants": {"t": data}},
        {"flags": {"a.b": data}},
    ):
        if isinstance(doc, dict) and "flags" in doc:
            _check("registry", doc, lambda d=doc: FlagRegistry.from_dict(d), (ValidationError,))
        else:
            _check(
                "validate",
                doc,
                lambda d=doc: validate_document(d, REGISTRY, locator=loc),
                (ValidationError,),
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    opts = parser.parse_args(argv)
    deadline = time.monotonic() + opts.seconds
    rounds = 0
    while time.monotonic() < deadline and not FINDINGS:
        _texts()
        _data()
        rounds += 1
    print(f"{rounds} rounds of 2 x 200 examples in {opts.seconds:g} s budget")
    for name, value, tb in FINDINGS[:10]:
        print(f"\nFINDING in {name}: {value!r:.300}\n{tb}")
    return 1 if FINDINGS else 0


if __name__ == "__main__":
    sys.exit(main())
