"""`netspec graph`: block instances, layout, SVG and HTML, errors; the HTML driven in a real headless Chromium."""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import ROOT, SPECS, YAML_SPECS

import netspec
from netspec.graph import block_instances, draw, draw_source, instance_paths
from netspec.graph.layout import crossings, place
from netspec.graph.model import key_attrs
from netspec.source import Source

SVG_NS = "{http://www.w3.org/2000/svg}"


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", "netspec", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _boxes(svg: str) -> dict[str, dict]:
    """Each box of an SVG drawing: its kind, centre, and text lines."""
    root = ET.fromstring(svg.split("\n", 1)[1])
    out = {}
    for g in root.iter(f"{SVG_NS}g"):
        if "box" in g.get("class", "").split():
            rect = g.find(f"{SVG_NS}rect")
            y = float(rect.get("y")) + float(rect.get("height")) / 2
            kind = next(c[2:] for c in g.get("class").split() if c.startswith("k-"))
            out[g.get("data-id")] = {"kind": kind, "y": y, "text": [t.text for t in g.iter(f"{SVG_NS}text")]}
    return out


def _edges(svg: str) -> list[tuple[str, str, str]]:
    root = ET.fromstring(svg.split("\n", 1)[1])
    return [(p.get("data-from"), p.get("data-to"), p.get("class")) for p in root.iter(f"{SVG_NS}path")
            if "edge" in p.get("class", "")]


# ---- block instances from names -----------------------------------------------------------

def test_instance_paths_from_hierarchical_names():
    assert instance_paths("features.3.main.conv2d") == ["features.3"]
    assert instance_paths("features.3.main.1.conv2d_2") == ["features.3", "features.3.main.1"]
    assert instance_paths("stem.conv2d") == []
    assert instance_paths("image") == []
    assert instance_paths("a.b_1.c") == []
    assert instance_paths("x.10.relu_1") == ["x.10"]


def test_block_instances_of_resnet50_name_their_blocks():
    spec = netspec.load(ROOT / "specs/resnet50.net")
    found = block_instances(spec.network(), spec.module)
    assert list(found)[:3] == ["features.0", "features.1", "features.2"]
    assert len(found) == 16
    assert found["features.0"].block == "bottleneck_down"
    assert found["features.1"].block == "bottleneck"
    assert {i.level for i in found.values()} == {1}
    assert block_instances(spec.network())["features.0"].block is None  # without the syntax tree: no names
    yaml = netspec.load(ROOT / "specs/yaml/resnet50.yaml")
    assert block_instances(yaml.network(), yaml.module) == found


def test_nested_block_instances():
    text = """
block inner(n) {
    return in -> dense(n) -> relu
}
block outer(n) {
    h = in -> inner(n) -> inner(n)
    return h -> dense(n)
}
network N {
    input x: [4]
    y = x -> outer(8) -> outer(8)
    output y
}
"""
    spec = netspec.parse_text(text, "nested.net")
    found = block_instances(spec.network(), spec.module)
    assert found["y.0"].block == "outer" and found["y.0"].level == 1
    assert found["y.0.h.0"].block == "inner" and found["y.0.h.0"].parent == "y.0"
    assert found["y.0.h.0"].level == 2
    # depth 1: the outer blocks open, the inner ones one box each (folded into a repeat of two)
    svg = draw(spec, "svg", depth=1)
    assert "group:y.0.h.0-1" in _boxes(svg)
    # depth 0: two outer instances, folded into one repeat box
    assert [b for b in _boxes(draw(spec, "svg", depth=0)) if b.startswith("group:")] == ["group:y.0-1"]
    assert not [b for b in _boxes(draw(spec, "svg", depth=None)) if b.startswith("group:")]


def test_key_attributes():
    assert key_attrs("conv2d", {"filters": 64, "kernel": (7, 7), "stride": (2, 2), "padding": ((3, 3), (3, 3)),
                                "dilation": (1, 1), "groups": 1, "activation": None}) == "64 7×7 /2 pad 3"
    assert key_attrs("dense", {"units": 10, "activation": {"name": "relu"}}) == "10 +relu"
    assert key_attrs("maxpool2d", {"pool": (2, 2), "stride": (2, 2), "padding": ((0, 0), (0, 0))}) == "2×2 /2"
    assert key_attrs("dropout", {"rate": 0.5}) == "p=0.5"


# ---- layout -----------------------------------------------------------------------------

def test_place_is_the_least_squares_ordered_placement():
    width, groups = [20, 20, 20], [[], [], []]
    # wanted positions that respect the gaps are kept
    assert place([0, 1, 2], [0.0, 100.0, 200.0], width, groups) == [0.0, 100.0, 200.0]
    # two boxes that want the same place share the violation equally: centres 48 apart (20 + 28)
    assert place([0, 1], [50.0, 50.0], width, groups) == [26.0, 74.0]


def test_crossings():
    assert crossings([[0, 1], [2, 3]], [[2], [3], [], []]) == 0
    assert crossings([[0, 1], [2, 3]], [[3], [2], [], []]) == 1


# ---- SVG --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", SPECS + YAML_SPECS, ids=lambda p: p.name)
def test_every_spec_draws_deterministically(path):
    spec = netspec.load(path)
    for net in spec.networks:
        svg = draw(spec, "svg", network=net.name)
        assert svg == draw(spec, "svg", network=net.name)
        html = draw(spec, "html", network=net.name)
        assert html == draw(spec, "html", network=net.name)
        boxes = _boxes(svg)
        inputs = [b for b in boxes.values() if b["kind"] == "input"]
        outputs = [b for b in boxes.values() if b["kind"] == "output"]
        assert len(inputs) == len(net.inputs) and len(outputs) == len(net.outputs)
        others = [b["y"] for b in boxes.values() if b["kind"] not in ("input", "output", "weights")]
        assert max(b["y"] for b in inputs) < min(others) <= max(others) < min(b["y"] for b in outputs)
        # no resource from the network: the only URL is the SVG namespace
        assert set(re.findall(r"https?://[^\"' )]+", html)) <= {"http://www.w3.org/2000/svg"}


def test_shapes_on_edges_params_and_merges():
    spec = netspec.load(ROOT / "specs/resnet50.net")
    svg = draw(spec, "svg", depth=None)
    boxes = _boxes(svg)
    assert len(boxes) == 1 + len(spec.network().nodes) + 1
    conv = boxes["features.0.main.conv2d_1"]["text"]
    assert conv == ["conv2d 64 3×3 pad 1", "features.0.main.conv2d_1", "36,864 params"]
    assert boxes["features.0.add"]["kind"] == "merge"
    # both branches enter the add
    assert {(a, b) for a, b, _ in _edges(svg) if b == "features.0.add"} == {
        ("features.0.main.batchnorm_2", "features.0.add"), ("features.0.skip.batchnorm", "features.0.add")}
    labels = re.findall(r'<text class="shape"[^>]*>([^<]*)</text>', svg)
    assert labels.count("[256, 56, 56]") >= 4 and "[2048]" in labels
    # every box with outgoing data edges has its output shape written below it
    sources = {a for a, _, c in _edges(svg) if "e-data" in c}
    assert len(labels) == len(sources)
    # blocks are labelled frames
    assert 'data-group="features.0"' in svg and "features.0 · bottleneck_down" in svg


def test_shared_layers_are_drawn_once_and_linked_to_each_use():
    spec = netspec.load(ROOT / "specs/siamese.net")
    svg = draw(spec, "svg")
    boxes = _boxes(svg)
    weights = {k: v for k, v in boxes.items() if v["kind"] == "weights"}
    assert sorted(weights) == ["layer:conv_a", "layer:conv_b", "layer:embed"]
    assert weights["layer:conv_a"]["text"] == ["layer conv_a", "conv2d 32 3×3 +relu", "320 params · shared by 2"]
    uses = sorted(b for a, b, c in _edges(svg) if a == "layer:conv_a")
    assert uses == ["a.conv_a", "b.conv_a"]
    assert all("e-weights" in c for a, _, c in _edges(svg) if a.startswith("layer:"))
    # the uses show no second parameter count
    assert not any("params" in t for t in boxes["b.conv_a"]["text"])


def test_resnet152_collapses_to_one_screen():
    spec = netspec.load(ROOT / "specs/resnet152.net")
    boxes = _boxes(draw(spec, "svg"))
    assert len(boxes) <= 40
    groups = [b for b in boxes if b.startswith("group:")]
    assert "group:features.12-46" in groups  # bottleneck(256) * 35 as one box
    assert any("×35" in t for t in boxes["group:features.12-46"]["text"])
    assert "group:features.12-46" not in _boxes(draw(spec, "svg", expand=["features.20"]))
    opened = _boxes(draw(spec, "svg", expand=["features.20"]))
    assert "features.20.add" in opened and "group:features.21" in opened
    by_block = _boxes(draw(spec, "svg", depth=0, expand=["bottleneck_down"]))
    assert "features.0.skip.conv2d" in by_block and "group:features.1-2" in by_block
    ET.fromstring(draw(spec, "svg", depth=None).split("\n", 1)[1])  # everything open: still well-formed


def test_everything_open():
    spec = netspec.load(ROOT / "specs/resnet152.net")
    boxes = _boxes(draw(spec, "svg", depth=None))
    assert len(boxes) == 1 + len(spec.network().nodes) + 1
    assert not [b for b in boxes if b.startswith("group:")]


def test_long_repeats_fold_into_one_box():
    text = "block b(n) {\n    return in -> dense(n) -> relu\n}\nnetwork Big {\n    input x: [16]\n" \
           "    y = x -> b(16) * 2000\n    output y\n}\n"
    boxes = _boxes(draw(netspec.parse_text(text, "big.net"), "svg"))
    assert list(boxes) == ["x", "group:y.0-1999", "output:y"]


# ---- errors -----------------------------------------------------------------------------

BAD = """network Bad {
    input x: [3, 32, 32]
    a = x -> conv2d(8, 3) -> relu
    b = a -> conv2d(16, 50) -> relu
    c = a -> maxpool2d(2) -> flatten -> dense(10)
    output c
}
"""


def test_a_spec_with_errors_is_drawn_up_to_them(tmp_path):
    svg, diags = draw_source(Source("bad.net", BAD), "svg")
    assert [d.code for d in diags] == ["E401"]
    boxes = _boxes(svg)
    assert boxes["error:0"]["kind"] == "error"
    assert boxes["error:0"]["text"][0] == "error[E401]" and boxes["error:0"]["text"][2] == "bad.net:4:14"
    assert ("a.relu", "error:0", "edge e-error") in _edges(svg)
    assert "c.dense" in boxes  # what does not depend on the error is drawn too
    spec_file = tmp_path / "bad.net"
    spec_file.write_text(BAD)
    out = tmp_path / "bad.html"
    proc = _cli("graph", spec_file, "-o", out)
    assert proc.returncode == 1
    assert "error[E401]" in proc.stderr and "bad.net:4:14" in proc.stderr
    assert out.exists() and "error[E401]" in out.read_text()


def test_graph_usage_errors(tmp_path):
    syntax = tmp_path / "syntax.net"
    syntax.write_text("network X {\n  input x: [3]\n  y = x -> \n}\n")
    out = tmp_path / "x.svg"
    proc = _cli("graph", syntax, "-o", out)
    assert proc.returncode == 1 and "E101" in proc.stderr and not out.exists()
    for args, message in [
        (("specs/mlp.net", "-o", tmp_path / "x.png"), "written as .svg or .html"),
        (("specs/mlp.net", "-o", out, "--network", "Nope"), "no network 'Nope'"),
        (("specs/resnet50.net", "-o", out, "--expand", "nope"), "blocks: bottleneck, bottleneck_down"),
        (("specs/mlp.net", "-o", out, "--depth", "-1"), "--depth must be 0 or more"),
        (("nope.net", "-o", out), "cannot read"),
        (("specs/mlp.net", "-o", tmp_path / "no" / "x.svg"), "cannot write"),
    ]:
        proc = _cli("graph", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr
        assert not out.exists()


def test_graph_cli_writes_svg_and_html(tmp_path):
    for suffix in ("svg", "html"):
        out = tmp_path / f"resnet.{suffix}"
        proc = _cli("graph", "specs/resnet50.net", "-o", out, "--depth", "0")
        assert proc.returncode == 0, proc.stderr
        first = out.read_bytes()
        _cli("graph", "specs/resnet50.net", "-o", out, "--depth", "0")
        assert out.read_bytes() == first


# ---- in a real browser ------------------------------------------------------------------

def _chromium():
    from browser import find_chromium

    path = find_chromium()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI: .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("no chromium on this machine (apt-get install chromium); CI installs it")
    return path


@pytest.fixture(scope="module")
def browser():
    from browser import Browser

    with Browser(_chromium(), width=1200, height=900) as b:
        yield b


def _open(browser, tmp_path, spec, **kw):
    page = tmp_path / (spec.replace("/", "_") + ".html")
    html = draw(netspec.load(ROOT / spec), "html", **kw)
    page.write_text(html, encoding="utf-8")
    browser.open(page.as_uri())
    payload = json.loads(re.search(r'id="ns-data">(.*?)</script>', html, re.S).group(1))
    return payload


def _center(browser, box_id):
    rect = browser.eval(f"(() => {{ const r = [...document.querySelectorAll('#ns-stage .box')]"
                        f".find(b => b.dataset.id === {json.dumps(box_id)}).getBoundingClientRect();"
                        f" return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
    return rect


@pytest.mark.parametrize("spec", ["specs/siamese.net", "specs/resnet50.net", "specs/unet.net"])
def test_browser_draws_what_the_svg_draws(browser, tmp_path, spec):
    payload = _open(browser, tmp_path, spec)
    assert browser.problems() == []
    # the page's own layout (JavaScript) places every box where the Python layout does
    assert browser.eval("window.netspecGraph.scene()") == payload["scene"]
    ids = browser.eval("[...document.querySelectorAll('#ns-stage .box')].map(b => b.dataset.id)")
    assert ids == [n["id"] for n in payload["scene"]["nodes"]]
    texts = browser.eval("document.getElementById('ns-stage').textContent")
    for name in ("input", "output"):
        assert name in texts


def test_browser_click_shows_details(browser, tmp_path):
    _open(browser, tmp_path, "specs/resnet50.net", depth=None)
    assert browser.problems() == []
    assert browser.eval("document.getElementById('ns-details').hidden") is True
    x, y = _center(browser, "stem.conv2d")
    browser.click(x, y)
    panel = browser.eval("document.getElementById('ns-details').innerText")
    assert browser.eval("document.getElementById('ns-details').hidden") is False
    assert "stem.conv2d" in panel and "[64, 112, 112]" in panel and "9,408" in panel
    assert "118,013,952" in panel  # MACs
    assert "resnet50.net:37:12" in panel and "conv2d(64, 7, stride=2, padding=3" in panel  # its span, its line
    assert "kernel = (7, 7)" in panel
    assert browser.eval("document.querySelector('.box.selected').dataset.id") == "stem.conv2d"
    assert browser.problems() == []


def test_browser_expand_and_collapse(browser, tmp_path):
    _open(browser, tmp_path, "specs/resnet50.net", depth=0)
    before = browser.eval("document.querySelectorAll('#ns-stage .box').length")
    x, y = _center(browser, "group:features.0")
    browser.click(x, y)
    panel = browser.eval("document.getElementById('ns-details').innerText")
    assert "bottleneck_down" in panel and "76,288" in panel
    browser.click(x, y, count=2)  # a double-click opens the block
    after = browser.eval("document.querySelectorAll('#ns-stage .box').length")
    assert after == before - 1 + 12
    assert "features.0" in browser.eval("window.netspecGraph.expanded()")
    # clicking the frame's title closes it again
    tx, ty = browser.eval("(() => { const r = document.querySelector('.frame[data-group=\"features.0\"] text')"
                          ".getBoundingClientRect(); return [r.x + 5, r.y + r.height / 2]; })()")
    browser.click(tx, ty)
    assert browser.eval("document.querySelectorAll('#ns-stage .box').length") == before
    assert browser.problems() == []


def test_browser_pan_and_zoom(browser, tmp_path):
    _open(browser, tmp_path, "specs/resnet50.net", depth=0)
    view = "document.getElementById('ns-svg').getAttribute('viewBox').split(' ').map(Number)"
    x0, y0, w0, h0 = browser.eval(view)
    browser.drag(600, 500, 500, 300)  # dragging left and up moves the view right and down
    x1, y1, w1, h1 = browser.eval(view)
    assert (w1, h1) == (w0, h0) and x1 > x0 and y1 > y0
    assert browser.eval("document.getElementById('ns-details').hidden") is True  # a drag is not a click
    browser.wheel(600, 500, -300)  # zoom in
    assert browser.eval(view)[2] < w1
    browser.eval("document.getElementById('ns-fit').click()")
    x, y, w, h = browser.eval(view)
    scene = browser.eval("window.netspecGraph.scene()")
    assert w >= scene["width"] and h >= scene["height"]  # the whole drawing in view
    assert browser.problems() == []


def test_browser_draws_a_spec_with_errors(browser, tmp_path):
    html, _ = draw_source(Source("bad.net", BAD), "html")
    page = tmp_path / "bad.html"
    page.write_text(html, encoding="utf-8")
    browser.open(page.as_uri())
    assert browser.problems() == []
    x, y = _center(browser, "error:0")
    browser.click(x, y)
    panel = browser.eval("document.getElementById('ns-details').innerText")
    assert "the window (50) is larger than the padded input" in panel and "bad.net:4:14" in panel


# ---- bad input never crashes the drawing -------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|->|\s+|.", re.S)
_VOCAB = ["relu", "dense(3)", "conv2d(8, 3)", "maxpool2d(2)", "add(a, b)", "concat(x, y, axis=0)", "->", "(", ")",
          "=", "*", "* 3", "in", "layer", "output", "x", "\n", "0", "-1", "flatten", "return"]


@pytest.mark.parametrize("name", ["siamese.net", "resnet50.net", "unet.net", "vae.net"])
def test_mutated_specs_draw_or_give_diagnostics(name):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from netspec import SpecError

    tokens = _TOKEN.findall((ROOT / "specs" / name).read_text())

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.integers(0, len(tokens) - 1), st.sampled_from(["del", "dup", "sub"]),
                              st.sampled_from(_VOCAB)), min_size=1, max_size=3))
    def check(edits):
        toks = list(tokens)
        for i, kind, word in edits:
            i = min(i, len(toks) - 1)
            if kind == "del":
                del toks[i]
            elif kind == "dup":
                toks.insert(i, toks[i])
            else:
                toks[i] = word
        try:
            svg, diagnostics = draw_source(Source(name, "".join(toks)), "svg")
        except SpecError as exc:
            assert exc.diagnostics
            return
        ET.fromstring(svg.split("\n", 1)[1])
        errors = sum(b["kind"] == "error" for b in _boxes(svg).values())
        assert errors <= len(diagnostics)
        if len(re.findall(r"^network ", "".join(toks), re.M)) == 1:  # one network: every error is marked on it
            assert errors == len(diagnostics)

    check()
