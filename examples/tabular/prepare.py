"""Write data/train.csv and data/val.csv from the iris table that ships inside scikit-learn.

The header is ``sepal_length,sepal_width,petal_length,petal_width,species``: `species` (the spec's
target) is found by name, and the four remaining columns fill the input `measurements: [4]` in file
order (docs/training.md, "CSV"). Features are standardised with the training split's mean and
standard deviation. A fixed, stratified split keeps 30% for validation.
"""

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

HEADER = "sepal_length,sepal_width,petal_length,petal_width,species"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "data"))
    args = parser.parse_args()
    iris = load_iris()
    x_train, x_val, y_train, y_val = train_test_split(iris.data, iris.target, test_size=0.3, random_state=0,
                                                      stratify=iris.target)
    mean, std = x_train.mean(0), x_train.std(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
        rows = np.column_stack([(x - mean) / std, y])
        fmt = ["%.6f"] * 4 + ["%d"]
        np.savetxt(out / f"{name}.csv", rows, fmt=fmt, delimiter=",", header=HEADER, comments="")
    print(f"wrote {out / 'train.csv'} ({len(y_train)} rows) and {out / 'val.csv'} ({len(y_val)} rows)")


if __name__ == "__main__":
    main()
