"""One training epoch of lesson 17's vision transformer: the engine against the same model in PyTorch.

The model is lesson 17's teacher (``notebooks/checkpoints/make_17.py``: ``CONFIG``, ``TEACHER_LAYERS``
pre-norm layers, a class token, patch tokens) and the epoch that script trains: MNIST-5k's 3,500
training images in shuffled batches of ``BATCH``, Adam. PyTorch gets the same weights (the same
parameter names: ``torch.nn.TransformerEncoderLayer`` is what ``nn.TransformerEncoderLayer`` copies)
and the same batches; its outputs are checked against ours first. Both run in this process,
interleaved, so the ratio (PyTorch time / ours: above 1 means faster than PyTorch) is fair on a
noisy machine. Without PyTorch installed only our time is printed.

    python benchmarks/train_vit.py [--repeats 3] [--threads N] [--layers L]
"""
import argparse
import os
import runpy

import minitorch_compress as mc  # before NumPy: it sets the thread settings OpenBLAS reads when it loads
from minitorch_compress import functional as F

import numba
import numpy as np
from timing import median_times

try:
    import torch
except ImportError:
    torch = None

MAKE_17 = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notebooks", "checkpoints",
                                      "make_17.py"))


def torch_vit(config, num_layers):
    """``mc.vit.VisionTransformer`` written in PyTorch, with its parameter names."""
    tnn = torch.nn
    hidden, patch = config["hidden_dim"], config["patch_size"]
    tokens = (config["image_size"] // patch) ** 2

    class Encoder(tnn.Module):
        def __init__(self):
            super().__init__()
            self.pos_embedding = tnn.Parameter(torch.zeros(1, tokens + 1, hidden))
            self.layers = tnn.Sequential(*[tnn.TransformerEncoderLayer(
                hidden, config["num_heads"], config["mlp_dim"], 0.0, "gelu", 1e-6, batch_first=True, norm_first=True)
                for _ in range(num_layers)])
            self.ln = tnn.LayerNorm(hidden, 1e-6)

        def forward(self, x):
            return self.ln(self.layers(x + self.pos_embedding))

    class ViT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.class_token = tnn.Parameter(torch.zeros(1, 1, hidden))
            self.patch_proj = tnn.Linear(patch * patch, hidden)
            self.encoder = Encoder()
            self.heads = tnn.Sequential()
            self.heads.add_module("head", tnn.Linear(hidden, config["num_classes"]))

        def forward(self, x):
            n, side = x.shape[0], config["image_size"] // patch
            x = x.reshape(n, 1, side, patch, side, patch).permute(0, 2, 4, 1, 3, 5).reshape(n, side * side, -1)
            x = torch.cat([self.class_token.expand(n, -1, -1), self.patch_proj(x)], dim=1)
            return self.heads(self.encoder(x)[:, 0])
    return ViT()


def copy_weights(ours, theirs):
    state = {k.replace("encoder_layer_", ""): torch.from_numpy(v.data.copy()) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=numba.get_num_threads())
    parser.add_argument("--layers", type=int, default=MAKE_17["TEACHER_LAYERS"])
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    config, batch = MAKE_17["CONFIG"], MAKE_17["BATCH"]

    train_set, _, _ = mc.data.load_mnist_5k(flatten=False, validation=500)
    order = np.random.default_rng(0).permutation(len(train_set))
    batches = [(train_set.X[order[i:i + batch]], train_set.y[order[i:i + batch]])
               for i in range(0, len(train_set), batch)]
    mc.manual_seed(0)
    model = mc.vit.VisionTransformer(num_layers=args.layers, **config)
    opt = mc.optim.Adam(model.parameters(), lr=MAKE_17["LR"])

    def engine_epoch():
        for x, y in batches:
            loss = F.cross_entropy(model(mc.tensor(x)), mc.tensor(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
    runs = {"engine": engine_epoch}
    if torch is not None:
        torch.set_num_threads(args.threads)
        theirs = torch_vit(config, args.layers)
        copy_weights(model, theirs)
        x0 = batches[0][0]
        gap = np.abs(theirs(torch.from_numpy(x0)).detach().numpy() - model(mc.tensor(x0)).data).max()
        assert gap < 1e-4, f"the PyTorch model computes something else (largest difference {gap:.2e})"
        t_opt = torch.optim.Adam(theirs.parameters(), lr=MAKE_17["LR"])
        t_batches = [(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))) for x, y in batches]

        def torch_epoch():
            for x, y in t_batches:
                loss = torch.nn.functional.cross_entropy(theirs(x), y)
                t_opt.zero_grad()
                loss.backward()
                t_opt.step()
        runs["pytorch"] = torch_epoch
    median = dict(zip(runs, median_times(*runs.values(), min_repeats=args.repeats, budget=0)))
    print(f"ViT {args.layers} layers ({sum(p.data.size for p in model.parameters()):,} parameters), one epoch of "
          f"{len(train_set):,} images in batches of {batch}, {args.threads} thread(s), median of {args.repeats}")
    for name, seconds in median.items():
        print(f"  {name:8s} {seconds:6.2f} s")
    if "pytorch" in median:
        print(f"  pytorch / engine = {median['pytorch'] / median['engine']:.2f}x   (above 1: the engine is faster)")


if __name__ == "__main__":
    main()
