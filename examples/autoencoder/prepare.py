"""Write data/train/{noisy,clean}.npy and data/val/{noisy,clean}.npy from scikit-learn's 8x8 digits.

Each folder holds one .npy file per spec value, named after it: `netspec train --data data/train`
memory-maps them (the route for data larger than memory). `clean` is the image scaled to [0, 1] and
flattened to 64 pixels; `noisy` adds Gaussian noise (std 0.2, seeded) clipped to [0, 1].
"""

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "data"))
    args = parser.parse_args()
    clean = (load_digits().data / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0.0, 0.2, clean.shape), 0.0, 1.0).astype(np.float32)
    order = rng.permutation(len(clean))
    parts = {"train": order[:1437], "val": order[1437:]}
    for name, rows in parts.items():
        folder = Path(args.out) / name
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "clean.npy", clean[rows])
        np.save(folder / "noisy.npy", noisy[rows])
    baseline = float(((clean[parts["val"]] - clean[parts["train"]].mean(0)) ** 2).mean())
    noise = float(((clean[parts["val"]] - noisy[parts["val"]]) ** 2).mean())
    print(f"wrote {args.out}/train and {args.out}/val; validation mse of the mean image {baseline:.4f}, "
          f"of the noisy input itself {noise:.4f}")


if __name__ == "__main__":
    main()
