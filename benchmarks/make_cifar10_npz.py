"""Joins ../shared/data/cifar10's train subset and test set into one npz for `npz:` runs.

python benchmarks/make_cifar10_npz.py ../shared/data/cifar10 /tmp/cifar10_subset.npz
"""

import sys

import numpy as np


def main(src_dir: str, out_path: str) -> None:
    train = np.load(f"{src_dir}/cifar10_train_subset_10k.npz")
    test = np.load(f"{src_dir}/cifar10_test_10k.npz")
    np.savez(
        out_path,
        image=train["image"],
        label=train["label"],
        test_image=test["image"],
        test_label=test["label"],
    )
    print(f"wrote {out_path}: {len(train['label'])} train, {len(test['label'])} test")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
