"""Write data/train.npz and data/val.npz from scikit-learn's bundled 8x8 digits (no download).

Pixels (0..16) are scaled to [0, 1] and shaped [N, 1, 8, 8] (the spec's channels-first `image`);
labels are int64 class ids. A fixed, stratified split keeps 20% for validation.

    python prepare.py [--limit N]    # --limit: only the first N training samples (a quick run)
"""

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "data"))
    parser.add_argument("--limit", type=int, default=None, help="keep only N training samples")
    args = parser.parse_args()
    digits = load_digits()
    image = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    label = digits.target.astype(np.int64)
    x_train, x_val, y_train, y_val = train_test_split(image, label, test_size=0.2, random_state=0, stratify=label)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "train.npz", image=x_train, label=y_train)
    np.savez(out / "val.npz", image=x_val, label=y_val)
    print(f"wrote {out / 'train.npz'} ({len(y_train)} images) and {out / 'val.npz'} ({len(y_val)} images)")


if __name__ == "__main__":
    main()
