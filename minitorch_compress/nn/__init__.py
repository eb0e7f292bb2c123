"""Modules, as in ``torch.nn``."""
from .module import Module, Parameter, RemovableHandle
from .layers import (Linear, Conv2d, ReLU, ReLU6, GELU, Embedding, Sigmoid, Tanh, Identity, Dropout, Flatten, MaxPool2d, AvgPool2d,
                     AdaptiveAvgPool2d, CrossEntropyLoss, MSELoss)
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .containers import Sequential, ModuleList
from .attention import MultiheadAttention, TransformerEncoderLayer
from .. import functional

__all__ = ["Module", "Parameter", "RemovableHandle", "Linear", "Conv2d", "ReLU", "ReLU6", "GELU", "Sigmoid", "Tanh",
           "Identity", "Dropout", "Flatten", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d",
           "BatchNorm2d", "LayerNorm", "Embedding", "MultiheadAttention", "TransformerEncoderLayer",
           "CrossEntropyLoss", "MSELoss", "Sequential", "ModuleList", "functional"]
