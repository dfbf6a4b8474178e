"""Serve the exported ONNX model with ONNX Runtime and check it against the trained PyTorch model.

    python serve.py digits.onnx --weights runs/digits/best.safetensors --data data/val.npz

Prints ONNX Runtime's accuracy on the data and the largest difference between its logits and those
of the spec's PyTorch model loaded from the same checkpoint; exits 1 if any predicted class differs
or the logits differ by more than 1e-4.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

import netspec
from netspec.weights import load_weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--spec", default=str(Path(__file__).parent / "digits.net"))
    args = parser.parse_args()
    with np.load(args.data) as d:
        image, label = d["image"], d["label"]
    session = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    (served,) = session.run(None, {session.get_inputs()[0].name: image})
    import torch

    model = netspec.load(args.spec).to_torch(weights=load_weights(args.weights)).eval()
    with torch.no_grad():
        reference = model(torch.from_numpy(image)).numpy()
    same = int((served.argmax(1) == reference.argmax(1)).sum())
    diff = float(np.abs(served - reference).max())
    accuracy = float((served.argmax(1) == label).mean())
    print(f"onnxruntime accuracy {accuracy:.4f} on {len(label)} images; predictions equal to PyTorch's: "
          f"{same}/{len(label)}; max |logit difference| {diff:.2e}")
    return 0 if same == len(label) and diff <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
