"""How hard is rekindle's synthetic dataset? Trains a linear model, a small CNN and a timm ViT of
the quickstart's width on a synthetic shard with every label, and prints train/test accuracy.

    rekindle data prepare --from synthetic --classes 10 --per-class 500 --size 32 --out /tmp/syn-train.shard
    rekindle data prepare --from synthetic --classes 10 --per-class 100 --size 32 --seed 1 --out /tmp/syn-test.shard
    /tmp/ref/bin/python scripts/synthetic_probe.py /tmp/syn-train.shard /tmp/syn-test.shard

The shard is read directly (docs/FORMAT.md): a 128-byte header, HWC u8 pixels, u32 labels.
"""
import struct
import sys
import time

import numpy as np
import timm
import torch


def load(path):
    b = open(path, "rb").read()
    n, h, w, c, _ = struct.unpack_from("<QIIII", b, 16)
    labels_at = struct.unpack_from("<Q", b, 56)[0]
    x = np.frombuffer(b, np.uint8, n * h * w * c, 128).reshape(n, h, w, c)
    y = np.frombuffer(b, np.uint32, n, labels_at).astype(np.int64)
    return torch.tensor(x).permute(0, 3, 1, 2).float() / 255.0, torch.tensor(y)


def main(train_path, test_path):
    torch.manual_seed(0)
    xtr, ytr = load(train_path)
    xte, yte = load(test_path)
    mean, std = xtr.mean((0, 2, 3), keepdim=True), xtr.std((0, 2, 3), keepdim=True)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    k, c, side = int(ytr.max()) + 1, xtr.shape[1], xtr.shape[2]

    def fit(name, model, steps, lr):
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
        start = time.time()
        for _ in range(steps):
            idx = torch.randint(0, len(xtr), (128,))
            loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            test = (model(xte).argmax(1) == yte).float().mean().item()
            train = (model(xtr[:1000]).argmax(1) == ytr[:1000]).float().mean().item()
        print(f"{name:<24} {steps:>5} steps  train {train:.3f}  test {test:.3f}  ({time.time() - start:.0f} s)", flush=True)

    nn = torch.nn
    fit("linear", nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, k)), 300, 1e-3)
    cnn = nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, k))
    fit("cnn (3 conv)", cnn, 300, 1e-3)
    for steps in (300, 1000):
        vit = timm.models.vision_transformer.VisionTransformer(
            img_size=side, in_chans=c, patch_size=4, embed_dim=64, depth=4, num_heads=4, num_classes=k, global_pool="avg")
        fit("vit 64 wide, 4 blocks", vit, steps, 5e-4)


if __name__ == "__main__":
    main(*sys.argv[1:3])
