#!/usr/bin/env python3
"""A PyTorch peer of keras_ae's default conv autoencoder, for benchmarks only.

The same model as ``keras_ae.build_conv_autoencoder()`` (28x28x1; encoder
conv 32, conv 32, max pool, conv 4, linear conv 4, max pool; decoder
transposed conv 32 (kernel 2, stride 2), conv 32, transposed conv 32, conv
32, conv 1, sigmoid; ReLU elsewhere; Glorot-uniform weights and zero biases
as Keras initialises them), trained the same way: Adam at keras_ae's
default learning rate 3e-3, MSE, batch 256, the 60,000 Fashion-MNIST
training images shuffled every epoch, fed from memory (the fastest feeding
PyTorch has). Prints one JSON line: training images/s of each epoch, the
test MSE, the peak resident memory.

    python3 tools/torch_peer.py --epochs 2 --precision bfloat16 --channels-last

Needs PyTorch and NumPy only (not keras_ae or TensorFlow), so it runs in its
own environment: PyTorch is never a dependency of keras_ae or its tests.
``tools/benchmark_training.py --torch-python PATH`` runs it side by side
with keras_ae.
"""

import argparse
import gzip
import json
import re
import struct
import time

import numpy as np
import torch
from torch import nn

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx_images(path):
    """uint8 images ``(N, H, W)`` from a gzipped IDX file."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    count, height, width = struct.unpack(">III", raw[4:16])
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, height, width)


def autoencoder():
    """keras_ae.build_conv_autoencoder()'s layers, in PyTorch."""
    relu = nn.ReLU
    layers = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), relu(),
        nn.Conv2d(32, 32, 3, padding=1), relu(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 4, 3, padding=1), relu(),
        nn.Conv2d(4, 4, 3, padding=1),  # the code: linear
        nn.MaxPool2d(2),
        nn.ConvTranspose2d(4, 32, 2, stride=2), relu(),
        nn.Conv2d(32, 32, 3, padding=1), relu(),
        nn.ConvTranspose2d(32, 32, 2, stride=2), relu(),
        nn.Conv2d(32, 32, 3, padding=1), relu(),
        nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid())
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)  # Keras' glorot_uniform
            nn.init.zeros_(layer.bias)
    return layers


def peak_rss_mb():
    """This program's peak resident memory: VmHWM (getrusage's ru_maxrss
    would also count the process this one was forked from)."""
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--precision", choices=("float32", "bfloat16"),
                        default="float32",
                        help="bfloat16: torch.autocast('cpu', torch.bfloat16)")
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC memory format (oneDNN's preferred layout)")
    parser.add_argument("--data-dir", default=FASHION_MNIST_DIR)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    train = torch.from_numpy(read_idx_images(
        f"{args.data_dir}/train-images-idx3-ubyte.gz")[:, None] / np.float32(255))
    test = torch.from_numpy(read_idx_images(
        f"{args.data_dir}/t10k-images-idx3-ubyte.gz")[:, None] / np.float32(255))
    model = autoencoder().to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16,
                              enabled=args.precision == "bfloat16")
    loss_of = nn.MSELoss()

    speeds = []
    for _ in range(args.epochs):
        order = torch.randperm(len(train))
        started = time.perf_counter()
        model.train()
        for start in range(0, len(train), args.batch_size):
            batch = train[order[start:start + args.batch_size]].contiguous(
                memory_format=layout)
            with autocast:
                loss = loss_of(model(batch).float(), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        speeds.append(len(train) / (time.perf_counter() - started))

    model.eval()
    with torch.no_grad(), autocast:
        squared = sum(float(((model(test[i:i + 1000].contiguous(memory_format=layout))
                              .float() - test[i:i + 1000]) ** 2).sum())
                      for i in range(0, len(test), 1000))
    print(json.dumps({
        "images_per_s": speeds, "test_mse": squared / test.numel(),
        "peak_rss_mb": peak_rss_mb(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "precision": args.precision, "channels_last": args.channels_last,
    }))


if __name__ == "__main__":
    main()
