"""Build the hand-written Keras references and write tests/data/expected.json.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python tests/reference/make_expected.py

expected.json maps spec file name -> network name -> {
    "params_total": int,          # model.count_params(), BN moving stats included
    "params_trainable": int,
    "params_non_trainable": int,
    "outputs": [[per-sample shape, channels-first], ...]   # in `output` order
}
A dimension of unknown size would be written as null (no current output has one).

Before writing, the script checks the figures that are known from elsewhere
(published totals, the lecture notes' own arithmetic) and fails if a
reference disagrees with them.
"""

import json
import math
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
from keras_reference import REFERENCES  # noqa: E402

OUT = HERE.parent / "data" / "expected.json"

# Figures from outside this file: (spec, network) -> {field: value}.
KNOWN = {
    # torchvision.models.vgg16 / keras.applications.VGG16
    ("vgg16.net", "VGG16"): {"params_total": 138_357_544},
    # torchvision.models.resnet50: sum of parameters() = 25,557,032;
    # the BN buffers (running mean/var) add 2 * 26,560 channels = 53,120.
    ("resnet50.net", "ResNet50"): {
        "params_trainable": 25_557_032,
        "params_non_trainable": 53_120,
    },
    # torchvision.models.resnet152: sum of parameters() = 60,192,808.
    ("resnet152.net", "ResNet152"): {"params_trainable": 60_192_808},
    # torchvision.models.vgg19 / keras.applications.VGG19
    ("vgg19.net", "VGG19"): {"params_total": 143_667_240},
    # Lecture notes: 3*4 + 4*2 + (4 + 2) = 26.
    ("tiny_mlp.net", "TinyMLP"): {"params_total": 26},
    # Lecture notes (CS231n): (5*5*3 + 1) * 10 = 760, output 32x32x10.
    ("conv_example.net", "ConvExample"): {
        "params_total": 760,
        "outputs": [[10, 32, 32]],
    },
}


def n_weights(weights):
    return int(sum(math.prod(w.shape) for w in weights))


def channels_first(shape):
    """Keras per-sample shape (channels last) -> spec shape (channels first)."""
    shape = [None if d is None else int(d) for d in shape]
    if len(shape) >= 3:
        shape = [shape[-1]] + shape[:-1]
    return shape


def describe(model):
    outputs = model.outputs if isinstance(model.outputs, list) else [model.outputs]
    total = int(model.count_params())
    trainable = n_weights(model.trainable_weights)
    non_trainable = n_weights(model.non_trainable_weights)
    assert trainable + non_trainable == total, (model.name, trainable, non_trainable, total)
    return {
        "params_total": total,
        "params_trainable": trainable,
        "params_non_trainable": non_trainable,
        "outputs": [channels_first(o.shape[1:]) for o in outputs],
    }


def main():
    expected = {}
    failures = []
    for (spec, network), build in REFERENCES.items():
        keras.backend.clear_session()
        info = describe(build())
        expected.setdefault(spec, {})[network] = info
        for field, want in KNOWN.get((spec, network), {}).items():
            if info[field] != want:
                failures.append(f"{spec}:{network} {field} = {info[field]}, expected {want}")
        print(
            f"{spec:24} {network:16} total {info['params_total']:>12,} "
            f"trainable {info['params_trainable']:>12,} "
            f"non-trainable {info['params_non_trainable']:>8,}  outputs {info['outputs']}"
        )

    # Cross-check VGG-16 against Keras's own implementation.
    keras.backend.clear_session()
    applications_vgg16 = keras.applications.VGG16(weights=None).count_params()
    if applications_vgg16 != expected["vgg16.net"]["VGG16"]["params_total"]:
        failures.append(f"keras.applications.VGG16 has {applications_vgg16} params")

    if failures:
        print("\n".join(["MISMATCH:"] + failures), file=sys.stderr)
        return 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(expected, indent=2)
    # Keep each shape list on one line: [[10, 32, 32]] rather than 5 lines.
    text = re.sub(r"\[[\s\d,null]*\]", lambda m: json.dumps(json.loads(m.group())), text)
    OUT.write_text(text + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
