"""Building blocks of convolutional networks, each a few lines of the engine's layers.

``BasicBlock`` is ResNet's residual block (He et al. 2016, as torchvision's ``BasicBlock``)::

    out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))

with 3x3 convolutions (the first one strided), and a shortcut that is the identity when the
shape is kept, else a strided 1x1 convolution and BatchNorm ("option B" of the paper). The add
ties the block's output channels to its input's: pruning a channel of one means pruning it in both.
"""
from . import nn
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
