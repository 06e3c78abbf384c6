#!/usr/bin/env python3
"""The peer maskloop's speed is measured against: the reference U-Net of DESIGN.md in PyTorch
(CPU), timed exactly like tools/bench/bench.ts times maskloop's engine.

Run with Debian's python3 (package python3-torch):  /usr/bin/python3 torch_peer.py --threads 2
--norm batch: the network maskloop trains, a batch normalisation after each 3x3 convolution (whose
bias it replaces), in eval mode for prediction as a PyTorch user runs it.
Prints one JSON object as its last line."""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3x3(cin, cout, norm):
    if not norm:
        return nn.Conv2d(cin, cout, 3, padding=1)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))


class UNet(nn.Module):
    def __init__(self, in_ch=1, out_ch=1, depth=4, base=16, norm=False):
        super().__init__()
        self.depth = depth
        self.enc = nn.ModuleList()
        c = in_ch
        for level in range(depth):
            f = base * 2 ** level
            self.enc.append(nn.ModuleList([conv3x3(c, f, norm), conv3x3(f, f, norm)]))
            c = f
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for level in range(depth - 2, -1, -1):
            f = base * 2 ** level
            self.up.append(conv3x3(2 * f, f, norm))
            self.dec.append(nn.ModuleList([conv3x3(2 * f, f, norm), conv3x3(f, f, norm)]))
        self.head = nn.Conv2d(base, out_ch, 1)

    def forward(self, x):
        skips = []
        h = x
        for level, (a, b) in enumerate(self.enc):
            if level > 0:
                h = F.max_pool2d(h, 2)
            h = F.relu(b(F.relu(a(h))))
            if level < self.depth - 1:
                skips.append(h)
        for up, (a, b), skip in zip(self.up, self.dec, reversed(skips)):
            h = F.relu(up(F.interpolate(h, scale_factor=2, mode="nearest")))
            h = torch.cat([skip, h], 1)
            h = F.relu(b(F.relu(a(h))))
        return self.head(h)  # logits; sigmoid is folded into the loss / applied at inference


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--norm", choices=["none", "batch"], default="none")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = UNet(norm=args.norm == "batch")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 1, args.size, args.size)
    y = (torch.rand(args.batch, 1, args.size, args.size) > 0.5).float()

    def train_step():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        train_step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    train_ips = args.steps * args.batch / (time.perf_counter() - t0)

    model.eval()
    with torch.no_grad():
        for _ in range(args.warmup):
            torch.sigmoid(model(x))
        t0 = time.perf_counter()
        for _ in range(args.steps):
            torch.sigmoid(model(x)).numpy()
        predict_ips = args.steps * args.batch / (time.perf_counter() - t0)

    print(json.dumps({
        "peer": f"pytorch {torch.__version__}",
        "threads": args.threads,
        "norm": args.norm,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainImagesPerSecond": train_ips,
        "predictImagesPerSecond": predict_ips,
    }))


if __name__ == "__main__":
    main()
