"""One CNN training step (forward, backward, SGD with momentum) of the engine against PyTorch CPU.

Two networks at batch 64 on random 1x28x28 inputs: LeNet-5 (conv 5x5 -> max pool -> conv 5x5 ->
max pool -> 120 -> 84 -> 10, padding 2 on the first convolution, ReLU) and a small residual CNN with
BatchNorm (a 3x3 stem, max pool, ``blocks.BasicBlock(16, 16)``, ``BasicBlock(16, 32, stride=2)``, global
average pooling, a linear classifier). Both frameworks run in this process, interleaved, so the
ratio (PyTorch time / ours: above 1 means faster than PyTorch) is fair on a noisy machine. Without
PyTorch installed only our times are printed. Goal (issue 14): >= 1.0x on LeNet-5; done at >= 0.6x.

    python benchmarks/train_cnn.py [--repeats 9] [--steps 20] [--threads N]

``--threads 1`` runs both on one thread: on a loaded machine the spread is much smaller there.
"""
import argparse
import time

import minitorch_compress as mc  # before NumPy: it sets the thread settings OpenBLAS reads when it loads
from minitorch_compress import functional as F, nn, optim
from minitorch_compress.blocks import BasicBlock

import numba
import numpy as np

try:
    import torch
except ImportError:
    torch = None

BATCH = 64


def lenet5(lib):
    return lib.Sequential(lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.MaxPool2d(2), lib.Conv2d(6, 16, 5), lib.ReLU(),
                          lib.MaxPool2d(2), lib.Flatten(), lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.ReLU(),
                          lib.Linear(84, 10))


def resnet(lib, block):
    return lib.Sequential(lib.Conv2d(1, 16, 3, padding=1, bias=False), lib.BatchNorm2d(16), lib.ReLU(), lib.MaxPool2d(2),
                          block(16, 16), block(16, 32, 2), lib.AdaptiveAvgPool2d(1), lib.Flatten(), lib.Linear(32, 10))


def torch_basic_block():
    """``blocks.BasicBlock`` written in PyTorch (torchvision's, without the dependency)."""
    class TorchBasicBlock(torch.nn.Module):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            tnn = torch.nn
            self.conv1 = tnn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(out_channels)
            self.conv2 = tnn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
            self.bn2 = tnn.BatchNorm2d(out_channels)
            self.shortcut = tnn.Identity() if stride == 1 and in_channels == out_channels else tnn.Sequential(
                tnn.Conv2d(in_channels, out_channels, 1, stride, bias=False), tnn.BatchNorm2d(out_channels))

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))
    return TorchBasicBlock


def copy_weights(ours, theirs):
    """Start PyTorch from our initial weights (same shapes, same parameter order)."""
    with torch.no_grad():
        for p, q in zip(ours.parameters(), theirs.parameters()):
            q.copy_(torch.from_numpy(p.data.copy()))


def engine_step(model, opt, x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def torch_step(model, opt, x, y):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed repeat")
    parser.add_argument("--threads", type=int, default=None, help="threads for both (default: each library's own)")
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    mc.manual_seed(0)
    nets = {"LeNet-5": lenet5(nn), "residual CNN (BasicBlock, BatchNorm)": resnet(nn, BasicBlock)}
    versions = f"our kernels on {numba.get_num_threads()} threads"
    if torch is not None:
        versions += f"; PyTorch {torch.__version__}, {torch.get_num_threads()} threads"
    print(f"one training step (forward, backward, SGD momentum 0.9), batch {BATCH}, 1x28x28; "
          f"{args.repeats} repeats x {args.steps} steps, medians of the per-repeat mean; {versions}")
    for name, model in nets.items():
        runs = {"ours": (lambda m, o: lambda: engine_step(m, o, mc.tensor(x), mc.tensor(y)))(
            model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9))}
        if torch is not None:
            theirs = lenet5(torch.nn) if name == "LeNet-5" else resnet(torch.nn, torch_basic_block())
            copy_weights(model, theirs)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            runs["PyTorch"] = (lambda m, o: lambda: torch_step(m, o, tx, ty))(
                theirs, torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9))
        for run in runs.values():  # warm up: compile, caches, allocators
            for _ in range(3):
                run()
        times = {key: [] for key in runs}
        for _ in range(args.repeats):
            for key, run in runs.items():
                time.sleep(0.02)   # the other library's threads stop spinning (GOMP_SPINCOUNT) before these start
                start = time.perf_counter()
                for _ in range(args.steps):
                    run()
                times[key].append((time.perf_counter() - start) / args.steps * 1e3)
        print(name)
        for key, t in times.items():
            print(f"  {key:8s} {np.median(t):7.2f} ms/step   (repeats: {min(t):.2f}-{max(t):.2f})")
        if torch is not None:
            print(f"  PyTorch / ours = {np.median(times['PyTorch']) / np.median(times['ours']):.2f}x   "
                  f"(goal >= 1.0x, done at >= 0.6x)")


if __name__ == "__main__":
    main()
