"""Small builders shared by the pruning and metrics tests."""
from minitorch_compress import nn


def linear_with(weight, bias=None):
    """An ``nn.Linear`` holding the given weight (out, in) and bias."""
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    layer.weight.data[...] = weight
    if bias is not None:
        layer.bias.data[...] = bias
    return layer


def mask_of(layer, name="weight"):
    return getattr(layer, name + "_mask").data
