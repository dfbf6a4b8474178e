"""Write the op and function lists of the highlighters from the op registry.

Usage: python scripts/gen_editor_grammars.py [--check]

Rewrites ``OPS`` and ``FUNCTIONS`` in netspec/pygments_lexer.py and the op patterns of
editors/textmate/netspec.tmLanguage.json, so that a new op is highlighted everywhere without
editing either by hand. ``--check`` exits 1 when a file is out of date (tests/test_pygments.py
compares the lists with the registry as well).
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netspec.ops.registry import FAMILIES, LOSS_FNS, OPS, OPTIMIZER_DEFS  # noqa: E402

LEXER = ROOT / "netspec" / "pygments_lexer.py"
GRAMMAR = ROOT / "editors" / "textmate" / "netspec.tmLanguage.json"
MERGE_FAMILIES = {"elementwise", "concat", "dot"}


def _tuple(name: str, items: list[str], comment: str) -> str:
    body = textwrap.fill(", ".join(f'"{i}"' for i in items) + ",", width=114, initial_indent="    ",
                         subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)
    return f"#: {comment}\n{name} = (\n{body}\n)\n"


def _alternation(names) -> str:
    # longest first, so that `relu6` wins over `relu`
    return r"\b(?:" + "|".join(sorted(names, key=lambda n: (-len(n), n))) + r")\b"


def lexer_text(text: str) -> str:
    functions = [*LOSS_FNS, *OPTIMIZER_DEFS, *FAMILIES["initializer"], *FAMILIES["regularizer"]]
    ops = _tuple("OPS", sorted(OPS), "Ops usable as steps or merge sources (netspec.ops.registry.OPS).")
    fns = _tuple("FUNCTIONS", functions,
                 "Losses, optimisers, initialisers and regularisers (LOSS_FNS, OPTIMIZER_DEFS, FAMILIES).")
    text = re.sub(r"#: Ops usable as steps.*?\n\)\n", lambda _: ops, text, count=1, flags=re.S)
    return re.sub(r"#: Losses, optimisers.*?\n\)\n", lambda _: fns, text, count=1, flags=re.S)


def grammar_text(text: str) -> str:
    grammar = json.loads(text)
    acts = [n for n, o in OPS.items() if o.family == "activation"]
    merges = [n for n, o in OPS.items() if o.family in MERGE_FAMILIES]
    layers = [n for n in OPS if n not in acts and n not in merges]
    training = [*LOSS_FNS, *OPTIMIZER_DEFS, *FAMILIES["initializer"], *FAMILIES["regularizer"]]
    by_scope = {"layer": layers, "activation": acts, "merge": merges, "training": training}
    for pattern in grammar["repository"]["op"]["patterns"]:
        kind = pattern.get("name", "").split(".")[2] if pattern.get("name", "").count(".") >= 3 else None
        if kind in by_scope:
            pattern["match"] = _alternation(by_scope[kind])
    return json.dumps(grammar, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for path, fn in ((LEXER, lexer_text), (GRAMMAR, grammar_text)):
        old = path.read_text(encoding="utf-8")
        new = fn(old)
        if new != old:
            stale.append(path)
            if "--check" not in argv:
                path.write_text(new, encoding="utf-8")
    if "--check" in argv and stale:
        print("out of date: " + ", ".join(str(p.relative_to(ROOT)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
