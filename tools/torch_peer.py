#!/usr/bin/env python3
"""A PyTorch peer of keras_ae's default conv autoencoder, for benchmarks only.

The same model as ``keras_ae.build_conv_autoencoder()`` (28x28x1; encoder
conv 32, conv 32, max pool, conv 4, linear conv 4, max pool; decoder
transposed conv 32 (kernel 2, stride 2), conv 32, transposed conv 32, conv
32, conv 1, sigmoid; ReLU elsewhere; Glorot-uniform weights and zero biases
as Keras initialises them), trained the same way: Adam at keras_ae's
default learning rate 3e-3, MSE, batch 256, the 60,000 Fashion-MNIST
training images shuffled every epoch, fed from memory (the fastest feeding
PyTorch has). With ``--images FILE.npy`` (uint8 ``(N, H, W, C)``) the same
model at that size and channel count trains on those images instead (their
first tenth is the test set). Prints one JSON line: training images/s of
each epoch, the test MSE, the peak resident memory.

    python3 tools/torch_peer.py --epochs 2 --precision bfloat16 --channels-last
    python3 tools/torch_peer.py --images crops.npy --batch-size 64 --compile
    python3 tools/torch_peer.py --matmul-peak    # float32 and bfloat16 GFLOP/s
    python3 tools/torch_peer.py --serve 128 --channels 1   # eager inference timings

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


def autoencoder(channels=1):
    """keras_ae.build_conv_autoencoder()'s layers, in PyTorch."""
    relu = nn.ReLU
    layers = nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), relu(),
        nn.Conv2d(32, 32, 3, padding=1), relu(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 4, 3, padding=1), relu(),
        nn.Conv2d(4, 4, 3, padding=1),  # the code: linear
        nn.MaxPool2d(2),
        nn.ConvTranspose2d(4, 32, 2, stride=2), relu(),
        nn.Conv2d(32, 32, 3, padding=1), relu(),
        nn.ConvTranspose2d(32, 32, 2, stride=2), relu(),
        nn.Conv2d(32, 32, 3, padding=1), relu(),
        nn.Conv2d(32, channels, 3, padding=1), nn.Sigmoid())
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)  # Keras' glorot_uniform
            nn.init.zeros_(layer.bias)
    return layers


def matmul_peaks(size=4096, repeats=5):
    """PyTorch's best GFLOP/s of a ``size``-squared matrix product in float32
    and in bfloat16, each timed ``repeats`` times after a warm-up."""
    peaks = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a = torch.rand(size, size).to(dtype)
        b = torch.rand(size, size).to(dtype)
        a @ b
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            seconds.append(time.perf_counter() - started)
        peaks[name] = 2 * size ** 3 / min(seconds) / 1e9
    return peaks


def serving_timings(size, channels, calls=200, batch=32, seconds=2.0):
    """Eager inference of the model at ``size`` (weights as initialised: the
    speed does not depend on them), each configuration's batch-1 latency
    percentiles over ``calls`` calls and images/s at ``batch``."""
    configs = {"float32": (torch.float32, torch.contiguous_format),
               "float32, channels-last": (torch.float32, torch.channels_last),
               "bfloat16 autocast, channels-last": (torch.bfloat16, torch.channels_last)}
    results = {}
    for name, (dtype, layout) in configs.items():
        model = autoencoder(channels).to(memory_format=layout).eval()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16,
                                  enabled=dtype == torch.bfloat16)
        one = torch.rand(1, channels, size, size).contiguous(memory_format=layout)
        many = torch.rand(batch, channels, size, size).contiguous(memory_format=layout)
        with torch.inference_mode(), autocast:
            for _ in range(10):
                model(one)
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                model(one).float().numpy()
                times.append(time.perf_counter() - started)
            model(many)
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds or count < 3:
                model(many).float().numpy()
                count += 1
            per_second = count * batch / (time.perf_counter() - started)
        results[name] = {"p50_ms": 1000 * float(np.percentile(times, 50)),
                         "p99_ms": 1000 * float(np.percentile(times, 99)),
                         "images_per_s": per_second}
    return results


def load_images(args):
    """``(train, test)`` float tensors ``(N, C, H, W)`` in [0, 1]."""
    if args.images:
        images = np.load(args.images)
        if images.ndim != 4 or images.dtype != np.uint8:
            raise SystemExit(f"--images: expected uint8 (N, H, W, C), got "
                             f"{images.dtype} {images.shape}")
        images = torch.from_numpy(images.transpose(0, 3, 1, 2) / np.float32(255))
        count = max(1, len(images) // 10)
        return images[count:], images[:count]
    train = torch.from_numpy(read_idx_images(
        f"{args.data_dir}/train-images-idx3-ubyte.gz")[:, None] / np.float32(255))
    test = torch.from_numpy(read_idx_images(
        f"{args.data_dir}/t10k-images-idx3-ubyte.gz")[:, None] / np.float32(255))
    return train, test


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
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (inductor)")
    parser.add_argument("--data-dir", default=FASHION_MNIST_DIR)
    parser.add_argument("--images", default=None,
                        help="uint8 (N, H, W, C) .npy file instead of Fashion-MNIST")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--matmul-peak", action="store_true",
                        help="print float32 and bfloat16 matmul GFLOP/s and stop")
    parser.add_argument("--serve", type=int, default=None, metavar="SIZE",
                        help="print eager inference timings at SIZE x SIZE and stop")
    parser.add_argument("--channels", type=int, default=1, help="with --serve")
    args = parser.parse_args()
    if args.serve:
        print(json.dumps({"configs": serving_timings(args.serve, args.channels),
                          "torch": torch.__version__, "threads": torch.get_num_threads()}))
        return
    if args.matmul_peak:
        print(json.dumps({**matmul_peaks(), "torch": torch.__version__}))
        return

    torch.manual_seed(args.seed)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    train, test = load_images(args)
    model = autoencoder(train.shape[1]).to(memory_format=layout)
    step_model = torch.compile(model) if args.compile else model
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
                loss = loss_of(step_model(batch).float(), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        speeds.append(len(train) / (time.perf_counter() - started))

    model.eval()
    with torch.no_grad(), autocast:
        squared = sum(float(((model(test[i:i + 100].contiguous(memory_format=layout))
                              .float() - test[i:i + 100]) ** 2).sum())
                      for i in range(0, len(test), 100))
    print(json.dumps({
        "images_per_s": speeds, "test_mse": squared / test.numel(),
        "peak_rss_mb": peak_rss_mb(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "precision": args.precision, "channels_last": args.channels_last,
        "compile": args.compile,
    }))


if __name__ == "__main__":
    main()
