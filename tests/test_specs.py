"""Every spec in specs/ checks, with figures from independent Keras references and the seeds."""

import json

import pytest
from conftest import ROOT, SPECS

import netspec

EXPECTED = json.loads((ROOT / "tests" / "data" / "expected.json").read_text())


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_spec_matches_keras_reference(spec):
    """Totals and output shapes equal tests/reference/keras_reference.py's hand-written models."""
    loaded = netspec.load(spec)
    expected = EXPECTED[spec.name]
    assert sorted(n.name for n in loaded.networks) == sorted(expected)
    for net in loaded.networks:
        want = expected[net.name]
        trainable, non = net.param_counts()
        assert (trainable + non, trainable, non) == (
            want["params_total"], want["params_trainable"], want["params_non_trainable"])
        # a run-time dimension (a name in the spec) is None in the Keras reference
        assert [[d if isinstance(d, int) else None for d in net.type_of(o).shape] for o in net.outputs] == \
            want["outputs"]


@pytest.mark.parametrize(("spec", "network", "trainable", "total"), [
    ("vgg16.net", "VGG16", 138_357_544, 138_357_544),
    ("resnet50.net", "ResNet50", 25_557_032, 25_610_152),  # torchvision counts trainable params
    ("resnet152.net", "ResNet152", 60_192_808, 60_344_232),
    ("tiny_mlp.net", "TinyMLP", 26, 26),
    ("conv_example.net", "ConvExample", 760, 760),
    ("mlp.net", "MLP", 101_770, 101_770),
    ("gpt2_small.net", "GPT2", 124_439_808, 124_439_808),  # GPT2LMHeadModel(GPT2Config()), tied embeddings
    ("bert_base.net", "BERT", 109_482_240, 109_482_240),  # BertModel(BertConfig()), with the pooler
    ("vit_b16.net", "ViT_B16", 86_567_656, 86_567_656),  # torchvision's vit_b_16
])
def test_published_figures(spec, network, trainable, total):
    net = netspec.load(ROOT / "specs" / spec).network(network)
    t, n = net.param_counts()
    assert (t, t + n) == (trainable, total)


def test_seed_conv_example_shape():
    net = netspec.load(ROOT / "specs" / "conv_example.net").network()
    (out,) = net.outputs
    assert net.type_of(out).shape == (10, 32, 32)


def test_resnet50_macs_match_published():
    net = netspec.load(ROOT / "specs" / "resnet50.net").network()
    assert sum(n.macs for n in net.nodes) == 4_089_184_256  # torchvision / fvcore: 4.09 GMACs


def test_resnet50_names_follow_blocks():
    names = [n.name for n in netspec.load(ROOT / "specs" / "resnet50.net").network().nodes]
    assert "features.0.main.conv2d" in names and "features.0.skip.conv2d" in names
    assert "features.15.relu" in names and "features.16.relu" not in names
