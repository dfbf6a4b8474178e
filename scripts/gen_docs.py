"""Generate the op reference of docs/language.md (and the weight table of docs/weights.md) from the registry.

Usage::

    python scripts/gen_docs.py          # rewrite the generated sections in place
    python scripts/gen_docs.py --check  # exit 1 (and print a diff) when a section is out of date

Each generated section sits between ``<!-- BEGIN GENERATED: NAME -->`` and
``<!-- END GENERATED: NAME -->``; everything outside the markers is hand-written
and left untouched. The text comes from the op classes: ``doc``, ``positional``,
``attrs`` (kind, default, doc), ``shape_rule``, ``params_rule``, ``macs_rule``
and, for activations, ``formula``.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from netspec.lsp.docs import kind_text as plain_kind_text  # noqa: E402
from netspec.ops import base as _base  # noqa: E402
from netspec.ops.base import REQUIRED, Kind, OpDef  # noqa: E402
from netspec.ops.registry import FAMILIES, LOSS_FNS, OPS, OPTIMIZER_DEFS  # noqa: E402

LANGUAGE = ROOT / "docs" / "language.md"
WEIGHTS = ROOT / "docs" / "weights.md"

LAYOUTS = {1: "`[C, L]`", 2: "`[C, H, W]`", 3: "`[C, D, H, W]`"}
DUNDER = re.compile(r"^__\w+__$")
FAMILY_LINKS = {"activation": "#activations", "initializer": "#initialisers", "regularizer": "#regularisers"}

#: Meanings for attributes the registry declares without a doc line; ``"<op or family>.<attr>"`` wins over
#: ``"<attr>"``. Documentation only: the registry's own doc, where present, is used first.
FALLBACK_DOCS = {
    "stride": "step between windows",
    "dilation": "spacing between kernel taps",
    "padding": "valid, same (TensorFlow's rule), ints or (begin, end) pairs",
    "maxpoolNd.padding": "valid, same (TensorFlow's rule), ints or (begin, end) pairs; at most half the window",
    "avgpoolNd.padding": "valid, same (TensorFlow's rule), ints or (begin, end) pairs; at most half the window",
    "groups": "input and output channels split into groups",
    "depth_multiplier": "depthwise output channels per input channel",
    "eps": "added to the variance",
    "center": "learn beta",
    "scale": "learn gamma",
    "gamma_init": "initialiser of gamma (the scale)",
    "beta_init": "initialiser of beta (the offset)",
    "kernel_init": "input kernel initialiser",
    "recurrent_init": "recurrent kernel initialiser",
    "bias_init": "bias initialiser",
    "use_bias": "add biases",
    "kernel_regularizer": "penalty on the input kernel",
    "recurrent_regularizer": "penalty on the recurrent kernel",
    "bias_regularizer": "penalty on the biases",
    "embeddings_regularizer": "penalty on the embeddings",
    "merge_mode": "how the two directions combine: concat (last axis), sum, mul or ave",
    "elu.alpha": "scale of the negative part",
    "approximate": "use the tanh approximation",
    "huber.delta": "where the quadratic part ends",
    "momentum": "momentum factor (0: none)",
    "nesterov": "Nesterov momentum",
    "rho": "decay of the running average of squared gradients (and, in adadelta, of squared updates)",
    "centered": "normalise by the centred second moment (variance estimate)",
    "initial_accumulator": "start value of the sum of squared gradients",
    "beta1": "decay of the first-moment (mean) estimate",
    "beta2": "decay of the second-moment estimate",
    "amsgrad": "use the largest second-moment estimate seen so far",
}




# Values -------------------------------------------------------------------------------


def value_text(value) -> str:
    """A default as the spec writes it."""
    if value is None:
        return "—"
    if value is REQUIRED:
        return "required"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float):
        text = repr(value).replace("e-0", "e-").replace("e+0", "e+")
        return f"`{text}`"
    if isinstance(value, tuple):
        inner = ", ".join(value_text(v).strip("`") for v in value)
        return f"`({inner},)`" if len(value) == 1 else f"`({inner})`"
    return f"`{value}`"


def kind_text(kind: Kind, op: OpDef) -> str:
    """What an attribute accepts, as its own error message says it (the editor's hover says the same);
    a family of functions links to its table."""
    if isinstance(kind, _base.Callable):
        return f"{kind.text.split()[0]} [{kind.family}]({FAMILY_LINKS[kind.family]})"
    return plain_kind_text(kind, op)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def code_rule(text: str) -> str:
    """A shape rule: the leading ``[...] -> [...]`` part in code, the words after it plain."""
    if not text:
        return ""
    head, sep, tail = text.partition("; ")
    if "->" in head or head.startswith("["):
        return f"`{head}`" + (f"; {tail}" if sep else "")
    return text


def signature(op: OpDef, name: str | None = None) -> str:
    name = name or op.name
    if not op.positional:
        return f"`{name}`"
    return f"`{name}({', '.join(op.positional)})`"


def call_with_defaults(op: OpDef) -> str:
    """``name(a=1, b=2)``: every argument with its default (for the family tables)."""
    parts = []
    for key, attr in op.attrs.items():
        parts.append(key if attr.required else f"{key}={value_text(attr.default).strip('`')}")
    return f"`{op.name}({', '.join(parts)})`" if parts else f"`{op.name}`"


def attr_doc(op_name: str, key: str, doc: str) -> str:
    return doc or FALLBACK_DOCS.get(f"{op_name}.{key}") or FALLBACK_DOCS.get(key, "")


def attr_table(op: OpDef, members: list[OpDef] | None = None) -> list[str]:
    """The argument table of an op (or of a family of ops that differ only in their spatial rank)."""
    if not op.attrs:
        return ["Takes no arguments."]
    name = group_name(members or [op])
    rows = ["| argument | accepts | default | meaning |", "|---|---|---|---|"]
    for key, attr in op.attrs.items():
        texts = [kind_text(attr.kind, m) for m in (members or [op])]
        if len(set(texts)) > 1 and members:
            generic = {re.sub(rf"\b{m.rank}\b", "N", t) for m, t in zip(members, texts)}
            text = generic.pop() if len(generic) == 1 else " / ".join(texts)
        else:
            text = texts[0]
        pos = " (positional)" if key in op.positional else ""
        doc = attr_doc(name, key, attr.doc)
        rows.append(f"| `{key}`{pos} | {cell(text)} | {cell(value_text(attr.default))} | {cell(doc)} |")
    return rows


def overrides(op: OpDef, method: str) -> bool:
    return getattr(type(op), method) is not getattr(OpDef, method)


def rule_of(op: OpDef, kind: str) -> str:
    """The params or MACs rule; an op that computes weights or MACs must document them."""
    text = getattr(op, f"{kind}_rule")
    if text:
        return text
    if overrides(op, kind):
        raise SystemExit(f"gen_docs: {op.name} computes {kind} but has no {kind}_rule; add one in netspec/ops")
    return "none" if kind == "params" else "0"


# Layer ops ------------------------------------------------------------------------------


def _family_key(op: OpDef):
    """Ops made by ``_family`` (only name, rank and kind set on a shared base) document together."""
    cls = type(op)
    own = {k for k in vars(cls) if not DUNDER.match(k)}
    if op.rank and own <= {"name", "rank", "kind"}:
        return (cls.__bases__[0], getattr(cls, "kind", None))
    return cls


def layer_groups() -> list[list[OpDef]]:
    groups: dict = {}
    for op in OPS.values():
        if op.category in ("activation", "merge"):
            continue
        groups.setdefault(_family_key(op), []).append(op)
    return list(groups.values())


def group_name(members: list[OpDef]) -> str:
    if len(members) == 1:
        return members[0].name
    first = members[0]
    pattern = re.sub(rf"{first.rank}d$", "Nd", first.name)
    assert all(re.sub(rf"{m.rank}d$", "Nd", m.name) == pattern for m in members), [m.name for m in members]
    return pattern


def anchor(name: str) -> str:
    return "op-" + name.replace("_", "-")


def layer_section(members: list[OpDef]) -> list[str]:
    op = members[0]
    name = group_name(members)
    names = " · ".join(f"`{m.name}`" for m in members)
    out = [f"#### {names}", ""]
    out += [f'<a id="{anchor(m.name)}"></a>' for m in members]
    out.append("")
    if op.doc:
        out += [op.doc, ""]
    call = signature(op, name)
    if not op.positional and op.attrs:
        call += " (arguments by keyword)"
    if len(members) > 1:
        ranks = ", ".join(f"N = {m.rank}: input {LAYOUTS[m.rank]}" for m in members)
        call += f" ({ranks})"
    elif op.rank:
        call += f"; input {LAYOUTS[op.rank]}"
    extras = []
    if op.accepts_activation:
        extras.append("takes `activation=`")
    if not op.float_input:
        extras.append("takes integer ids")
    out += [f"Call: {call}" + (f"; {'; '.join(extras)}" if extras else "") + ".", ""]
    out += attr_table(op, members=members)
    out.append("")
    if not op.shape_rule:
        raise SystemExit(f"gen_docs: {op.name} has no shape_rule; add one in netspec/ops")
    out.append(f"- Shape: {code_rule(op.shape_rule)}")
    out.append(f"- Weights: {rule_of(op, 'params')}")
    out.append(f"- MACs: {rule_of(op, 'macs')}")
    out.append("")
    return out


# Families as tables ---------------------------------------------------------------------------


def args_cell(op: OpDef) -> str:
    if not op.attrs:
        return "—"
    parts = []
    for key, attr in op.attrs.items():
        text = f"`{key}`" if attr.required else f"`{key}={value_text(attr.default).strip('`')}`"
        doc = attr_doc(op.name, key, attr.doc)
        if doc:
            text += f" ({doc})"
        parts.append(text)
    return cell("; ".join(parts))


def activation_table() -> list[str]:
    rows = ["| activation | call | definition | arguments |", "|---|---|---|---|"]
    for op in FAMILIES["activation"].values():
        rows.append(f"| <a id=\"{anchor(op.name)}\"></a>`{op.name}` | {signature(op)} | "
                    f"`{cell(op.formula or op.doc)}` | {args_cell(op)} |")
    return rows


def merge_table() -> list[str]:
    rows = ["| merge | values | meaning | shape | arguments |", "|---|---|---|---|---|"]
    for op in OPS.values():
        if op.category != "merge":
            continue
        n = (f"{op.min_inputs}" if op.max_inputs == op.min_inputs
             else f"{op.min_inputs} or more")
        rows.append(f"| <a id=\"{anchor(op.name)}\"></a>`{op.name}` | {n} | {cell(op.doc)} | "
                    f"{cell(op.shape_rule)} | {args_cell(op)} |")
    return rows


def loss_table() -> list[str]:
    rows = ["| loss | arguments | definition | options |", "|---|---|---|---|"]
    for op in LOSS_FNS.values():
        args = "(mu, logvar)" if op.kind == "normal" else "(prediction, target)"
        rows.append(f"| `{op.name}` | `{args}` | `{cell(op.doc)}` | {args_cell(op)} |")
    return rows


def optimizer_table() -> list[str]:
    rows = ["| optimizer | what | hyperparameters (keyword only) and defaults |", "|---|---|---|"]
    docs: dict[str, str] = {}
    for op in OPTIMIZER_DEFS.values():
        hp = ", ".join(f"`{k}={value_text(a.default).strip('`')}`" for k, a in op.attrs.items())
        rows.append(f"| `{op.name}` | {cell(op.doc)} | {hp} |")
        for k, a in op.attrs.items():
            doc = attr_doc(op.name, k, a.doc)
            if doc:
                docs.setdefault(k, doc)
    rows.append("")
    rows += [f"- `{k}`: {d}" for k, d in docs.items()]
    return rows


def member_table(family: str, what: str) -> list[str]:
    rows = [f"| {family} | arguments (positional in this order) | {what} |", "|---|---|---|"]
    for op in FAMILIES[family].values():
        rows.append(f"| `{op.name}` | {args_cell(op)} | `{cell(op.doc)}` |")
    return rows


# Sections ---------------------------------------------------------------------------------------


def render_ops() -> str:
    groups = layer_groups()
    out = [
        "<!-- Generated by scripts/gen_docs.py from netspec/ops; do not edit by hand. -->",
        "",
        "### Index",
        "",
        "| kind | ops |",
        "|---|---|",
    ]
    by_cat: dict[str, list[str]] = {}
    for op in OPS.values():
        by_cat.setdefault(op.category, []).append(f"[`{op.name}`](#{anchor(op.name)})")
    for cat, names in by_cat.items():
        out.append(f"| {cat} | {', '.join(names)} |")
    out += ["", "### Layers", "",
            "Every argument can be given by name; the leading ones (shown in the call) also by position.",
            "Arguments ending in `_init` take an [initialiser](#initialisers), those ending in `_regularizer`",
            "a [regulariser](#regularisers), and `activation=` an [activation](#activations). In shape rules",
            "`C` is the input's channel axis, `S` a spatial size, `F` the last (feature) axis and `T` the",
            "time axis; `//` is floor division.",
            ""]
    for members in groups:
        out += layer_section(members)
    out += ["### Activations", "",
            "Usable as a step (`x -> relu`, `x -> leaky_relu(0.2)`) or as `activation=` of a layer.",
            "The output has the input's shape.", ""]
    out += activation_table()
    out += ["", "### Merges", "",
            "Merges are chain sources, `add(a, b) -> relu`; their arguments are values, `in`, or merges.",
            "MACs: 0, except `dot`: " + OPS["dot"].macs_rule + ".", ""]
    out += merge_table()
    out += ["", "### Losses", "",
            "Used in `loss`; options are keywords. Every loss is a mean over the batch (and, where the",
            "definition says so, over positions).", ""]
    out += loss_table()
    out += ["", "### Optimisers", ""]
    out += optimizer_table()
    out += ["", "### Initialisers", "",
            "Values of `kernel_init=`, `bias_init=`, `recurrent_init=`, `embeddings_init=`, `gamma_init=`,",
            "`beta_init=`: a bare name (`he_normal`) or a call (`normal(0.02)`). `fan_in` and `fan_out` are",
            "defined in [weights.md](weights.md#initialisers).", ""]
    out += member_table("initializer", "definition")
    out += ["", "### Regularisers", "",
            "Values of `kernel_regularizer=` and the other `*_regularizer=` arguments; the penalty is added",
            "to the loss.", ""]
    out += member_table("regularizer", "penalty")
    return "\n".join(out).rstrip() + "\n"


def render_weights() -> str:
    out = ["<!-- Generated by scripts/gen_docs.py from netspec/ops; do not edit by hand. -->", "",
           "| op | weights (`<layer>.<name>` [shape]) |", "|---|---|"]
    for members in layer_groups():
        op = members[0]
        rule = rule_of(op, "params")
        if rule == "none":
            continue
        names = ", ".join(f"`{m.name}`" for m in members)
        out.append(f"| {names} | {cell(rule)} |")
    return "\n".join(out) + "\n"


SECTIONS: list[tuple[Path, str, Callable[[], str]]] = [
    (LANGUAGE, "ops", render_ops),
    (WEIGHTS, "weights", render_weights),
]


def splice(text: str, name: str, body: str, path: Path) -> str:
    begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"gen_docs: {path} needs one '{begin}' line followed by one '{end}' line")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}{end}{tail}"


def expected() -> dict[Path, str]:
    """Each documentation file as it should read, generated sections filled in."""
    out: dict[Path, str] = {}
    for path, name, render in SECTIONS:
        text = out.get(path) or path.read_text(encoding="utf-8")
        out[path] = splice(text, name, render(), path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated section is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected().items():
        current = path.read_text(encoding="utf-8")
        if current == text:
            continue
        if args.check:
            stale.append(path)
            rel = path.relative_to(ROOT)
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       f"{rel} (current)", f"{rel} (generated)"))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"\n{names}: out of date; run `python scripts/gen_docs.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
