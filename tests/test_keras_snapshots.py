"""Snapshots of generated Keras source: a change to the output is a reviewed diff.

Three small specs pin the three shapes of output: a flat network (tiny_mlp), a convolutional one
with pads and pools (lenet5), and one whose blocks become functions (unet). Regenerate after a
deliberate change with ``NETSPEC_UPDATE_SNAPSHOTS=1 pytest tests/test_keras_snapshots.py`` and
review the diff. Generating imports no framework, so these run everywhere.
"""

import os
import re

import pytest
from conftest import ROOT

import netspec

SNAPSHOTS = ROOT / "tests" / "snapshots"
CASES = ["tiny_mlp", "lenet5", "unet"]


@pytest.mark.parametrize("spec", CASES)
def test_generated_keras_source_matches_its_snapshot(spec):
    source = netspec.load(ROOT / "specs" / f"{spec}.net").compile("keras")
    path = SNAPSHOTS / f"keras_{spec}.py"
    if os.environ.get("NETSPEC_UPDATE_SNAPSHOTS") == "1":
        path.write_text(source)
    assert path.exists(), f"no snapshot {path.name}: run with NETSPEC_UPDATE_SNAPSHOTS=1"
    assert source == path.read_text(), f"generated Keras source of {spec}.net changed; review and update"


def test_unet_blocks_become_functions_and_layer_names_stay_canonical():
    net = netspec.load(ROOT / "specs" / "unet.net").network()
    source = netspec.load(ROOT / "specs" / "unet.net").compile("keras")
    blocks = [b.name for b in net.blocks]
    for block in blocks:
        assert re.search(rf"^def {block}\(x, .*name=\"\"\):$", source, re.M), block
    calls = re.findall(r"= (\w+)\(\w+, .*name=\"([\w-]+)\"\)", source)
    instances = [(i.block, i.path.replace(".", "-")) for i in net.instances]
    assert sorted(calls) == sorted(instances)


def test_resnet50_keras_source_mirrors_the_spec():
    spec = netspec.load(ROOT / "specs" / "resnet50.net")
    source = spec.compile("keras")
    assert source.count("\ndef bottleneck_down(x, width, stride=1, name=\"\"):") == 1
    assert source.count("\ndef bottleneck(x, width, name=\"\"):") == 1
    # each `bottleneck(w) * n` run is a loop; the four stages call bottleneck_down once each
    assert len(re.findall(r"^    for i in range\(\d+, \d+\):$", source, re.M)) == 4
    assert len(re.findall(r"= bottleneck_down\(", source)) == 4
    assert 'name=f"features-{i}-"' in source
    assert len(source.splitlines()) < 625 / 4  # 625 flat lines before blocks were mirrored
