"""Building blocks of convolutional networks, each a few lines of the engine's layers: ResNet's
``BasicBlock``, MobileNet's ``DepthwiseSeparable`` and ``InvertedResidual``, SqueezeNet's ``Fire``.
Each docstring gives its parameter and multiply-add counts, which ``metrics`` measures.

``BasicBlock`` is ResNet's residual block (He et al. 2016, as torchvision's ``BasicBlock``)::

    out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))

with 3x3 convolutions (the first one strided), and a shortcut that is the identity when the
shape is kept, else a strided 1x1 convolution and BatchNorm ("option B" of the paper). The add
ties the block's output channels to its input's: pruning a channel of one means pruning it in both.
"""
from . import nn
from .tensor import cat
from .validation import check_positive


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        check_positive(in_channels=in_channels, out_channels=out_channels, stride=stride)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class DepthwiseSeparable(nn.Module):
    """MobileNet v1's block (Howard et al. 2017): a 3x3 (``kernel_size``) depthwise convolution (one filter per
    channel, ``groups=in_channels``) then a 1x1 pointwise one, each with BatchNorm and ReLU.

    Multiply-adds per output position: 9 C_in + C_in C_out, against 9 C_in C_out for a full 3x3
    convolution (about 8-9x fewer for wide layers). Parameters: 9 C_in + C_in C_out, plus
    2 (C_in + C_out) in the BatchNorms.
    """

    def __init__(self, in_channels, out_channels, stride=1, kernel_size=3):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding=kernel_size // 2,
                                   groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn2(self.pointwise(self.relu(self.bn1(self.depthwise(x))))))


class Fire(nn.Module):
    """SqueezeNet's fire module (Iandola et al. 2016): squeeze to ``squeeze`` channels with 1x1
    filters, then expand with ``expand1x1`` 1x1 and ``expand3x3`` 3x3 filters side by side, each
    followed by ReLU; the output has expand1x1 + expand3x3 channels.

    Multiply-adds per output position: C_in s + s e1 + 9 s e3; parameters the same plus the biases
    s + e1 + e3. Squeezing first makes the 3x3 filters see s << C_in channels.
    """

    def __init__(self, in_channels, squeeze, expand1x1, expand3x3):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        s = self.relu(self.squeeze(x))
        return cat([self.relu(self.expand1x1(s)), self.relu(self.expand3x3(s))], axis=1)


class InvertedResidual(nn.Module):
    """MobileNetV2's block (Sandler et al. 2018): expand to t C_in channels with a 1x1 convolution,
    filter them with a 3x3 depthwise one (strided), project back to C_out with a 1x1 convolution
    and *no* activation (a linear bottleneck: ReLU in a narrow space destroys information), and add
    the input when stride = 1 and C_in = C_out. BatchNorm after each convolution, ReLU6 after the
    first two. With t = 1 the expansion is left out.

    Multiply-adds per input position (stride 1): t C_in (C_in + 9 + C_out); parameters
    t C_in (C_in + 9 + C_out), less t C_in C_in when t = 1, plus the BatchNorms' 2 per channel.
    """

    def __init__(self, in_channels, out_channels, stride=1, expand_ratio=6, kernel_size=3):
        super().__init__()
        check_positive(expand_ratio=expand_ratio)
        hidden = in_channels * expand_ratio
        layers = [] if expand_ratio == 1 else [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                               nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, kernel_size, stride, padding=kernel_size // 2, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.layers = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        out = self.layers(x)
        return out + x if self.use_residual else out
