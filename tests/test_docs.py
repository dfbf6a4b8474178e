"""The documentation agrees with the code.

* The generated sections of docs/language.md (the op reference) and docs/weights.md (the weight
  table) are what ``scripts/gen_docs.py`` makes from the registry today.
* Each op's documented weight names (``params_rule``) are the names its ``params`` produces.
* Every complete example in the docs checks (or fails with the code it announces).
* docs/diagnostics.md documents every diagnostic code.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from netspec import SpecError
from netspec.api import parse_text
from netspec.diagnostics import CODES
from netspec.ops.registry import OPS
from netspec.weights import expected_shapes

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_sections_are_up_to_date():
    gen = _gen_docs()
    stale = [path.relative_to(ROOT) for path, text in gen.expected().items()
             if path.read_text(encoding="utf-8") != text]
    assert not stale, f"{', '.join(map(str, stale))} out of date with the registry: run `python scripts/gen_docs.py`"


def test_gen_docs_check_mode(capsys):
    assert _gen_docs().main(["--check"]) == 0, capsys.readouterr().out


# Weight names ----------------------------------------------------------------------------------

_SPATIAL = {1: "[3, 8]", 2: "[3, 8, 8]", 3: "[3, 6, 6, 6]"}
_SAMPLE_ARGS = {"filters": "4", "kernel": "3", "pool": "2", "padding": "1", "scale": "2"}
_SAMPLES = {
    "dense": ("[8]", "dense(4)"),
    "depthwise_conv2d": ("[3, 8, 8]", "depthwise_conv2d(3, depth_multiplier=2)"),
    "separable_conv2d": ("[3, 8, 8]", "separable_conv2d(4, 3)"),
    "flatten": ("[3, 4]", "flatten"),
    "reshape": ("[3, 4]", "reshape([4, -1])"),
    "permute": ("[3, 4]", "permute(1, 0)"),
    "dropout": ("[8]", "dropout(0.5)"),
    "batchnorm": ("[3, 8, 8]", "batchnorm"),
    "layernorm": ("[3, 8]", "layernorm"),
    "embedding": ("int64[5]", "embedding(10, 4)"),
    "simple_rnn": ("[T, 8]", "simple_rnn(4)"),
    "lstm": ("[T, 8]", "lstm(4)"),
    "gru": ("[T, 8]", "gru(4)"),
    "bidirectional": ("[T, 8]", "bidirectional(lstm(4))"),
    # issue 13's lecture ops
    **{m: ("[3, 8]", m) for m in ("exp", "log", "sqrt", "square", "abs", "negative")},
    "scale": ("[3, 8]", "scale(0.5)"),
    "shift": ("[3, 8]", "shift(1.0)"),
    "gaussian_noise": ("[3, 8]", "gaussian_noise(0.1)"),
    "masking": ("[T, 8]", "masking(0.0)"),
    "repeat_vector": ("[8]", "repeat_vector(3)"),
    "time_distributed": ("[T, 8]", "time_distributed(dense(4))"),
}
_SAMPLES.update({  # issue 14
    "attention": ("[T, 8]", "attention(2)"),
    "position_embedding": ("[T, 8]", "position_embedding(16)"),
    "sinusoidal_position": ("[T, 8]", "sinusoidal_position"),
    "class_token": ("[T, 8]", "class_token"),
    "select": ("[T, 8]", "select(0)"),
})
_LAYER_OPS = sorted(name for name, op in OPS.items() if op.category not in ("activation", "merge"))


def _sample(name: str) -> tuple[str, str]:
    if name in _SAMPLES:
        return _SAMPLES[name]
    op = OPS[name]
    assert op.rank, f"add a sample for {name} to tests/test_docs.py"
    args = ", ".join(_SAMPLE_ARGS[p] for p in op.positional)
    return _SPATIAL[op.rank], f"{name}({args})" if args else name


def _weights(name: str) -> dict[str, tuple[int, ...]]:
    shape, call = _sample(name)
    spec = parse_text(f"network T {{\n    input x: {shape}\n    y = x -> {call}\n    output y\n}}\n", "t.net")
    layers = spec.network().layers()
    return {p.name: p.shape for params in layers.values() for p in params}


@pytest.mark.parametrize("name", _LAYER_OPS)
def test_params_rule_names_the_weights(name):
    op = OPS[name]
    if name == "result":  # written by the checker for `out, h, c = ...`, never a chain step: no weights
        assert op.params({}, [], None) == [] and op.params_rule == ""
        return
    actual = set(_weights(name))
    if name == "bidirectional":
        inner = set(_weights("lstm"))
        assert actual == {f"{d}.{w}" for d in ("forward", "backward") for w in inner}
        assert "`forward.<w>`" in op.params_rule and "`backward.<w>`" in op.params_rule
        return
    documented = set(re.findall(r"`([^`]+)`", op.params_rule))
    assert documented == actual, f"{name}.params_rule names {sorted(documented)}; params() gives {sorted(actual)}"


def test_documented_layouts():
    """Spot checks of the layouts docs/weights.md states, with numbers."""
    assert _weights("dense") == {"kernel": (4, 8), "bias": (4,)}
    assert _weights("conv2d")["kernel"] == (4, 3, 3, 3)
    assert _weights("conv_transpose2d")["kernel"] == (3, 4, 3, 3)
    assert _weights("depthwise_conv2d")["kernel"] == (6, 1, 3, 3)
    assert _weights("separable_conv2d") == {"depthwise_kernel": (3, 1, 3, 3), "pointwise_kernel": (4, 3, 1, 1),
                                            "bias": (4,)}
    assert _weights("lstm") == {"kernel": (16, 8), "recurrent_kernel": (16, 4), "bias": (16,)}
    assert _weights("gru") == {"kernel": (12, 8), "recurrent_kernel": (12, 4), "bias": (12,), "recurrent_bias": (12,)}
    assert _weights("batchnorm") == {n: (3,) for n in ("gamma", "beta", "moving_mean", "moving_variance")}
    assert _weights("embedding") == {"embeddings": (10, 4)}


# Examples --------------------------------------------------------------------------------------

_FENCE = re.compile(r"^```(net|yaml)\n(.*?)^```", re.S | re.M)


def _examples():
    out = []
    for doc in ("language.md", "weights.md"):
        path = DOCS / doc
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            form, body = m.group(1), m.group(2)
            complete = re.search(r"^network ", body, re.M) if form == "net" else re.search(r"^networks:", body, re.M)
            if complete:
                line = text.count("\n", 0, m.start()) + 1
                out.append(pytest.param(form, body, id=f"{doc}:{line}"))
    return out


@pytest.mark.parametrize(("form", "body"), _examples())
def test_doc_example_checks(form, body):
    """A complete example checks; one whose first line is `# error: CODE` fails with that code."""
    m = re.match(r"# error: (E\d{3})\n", body)
    if m:
        with pytest.raises(SpecError) as info:
            parse_text(body, f"example.{form}")
        assert m.group(1) in [d.code for d in info.value.diagnostics], str(info.value)
    else:
        parse_text(body, f"example.{form}")


def test_language_md_has_examples():
    assert len(_examples()) >= 8


# Diagnostics -----------------------------------------------------------------------------------


def test_every_diagnostic_code_is_documented():
    path = DOCS / "diagnostics.md"
    assert path.exists(), "docs/diagnostics.md should document every code in netspec.diagnostics.CODES"
    text = path.read_text(encoding="utf-8")
    missing = [code for code in CODES if not re.search(rf"\b{code}\b", text)]
    assert not missing, f"docs/diagnostics.md does not mention {', '.join(missing)}"


# Links -----------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set(re.findall(r'<a id="([^"]+)"></a>', text))
    for m in re.finditer(r"^#{1,6} (.+)$", text, re.M):
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("doc", ["language.md", "weights.md"])
def test_links_resolve(doc):
    text = (DOCS / doc).read_text(encoding="utf-8")
    text_no_code = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    broken = []
    for target, anchor in re.findall(r"\]\(([\w.]*)#([\w-]+)\)", text_no_code):
        if target and not (DOCS / target).exists():
            continue  # another document's anchors are checked once it exists
        other = (DOCS / target).read_text(encoding="utf-8") if target else text
        if anchor not in _anchors(other):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{doc}: broken links {broken}"


def test_weights_md_name_listing():
    """The `expected_shapes` listing in docs/weights.md is what the checker gives for its example."""
    text = (DOCS / "weights.md").read_text(encoding="utf-8")
    spec_text = re.search(r"^```net\n(.*?)^```", text, re.S | re.M).group(1)
    listing = re.search(r"^\.\.\.     print\(name, list\(shape\)\)\n(.*?)^```", text, re.S | re.M).group(1)
    documented = [line.split(" ", 1) for line in listing.strip().splitlines()]
    actual = [[name, str(list(shape))] for name, shape in expected_shapes(parse_text(spec_text, "t.net")).items()]
    assert documented == actual
