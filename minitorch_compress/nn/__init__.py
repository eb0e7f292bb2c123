"""Modules, as in ``torch.nn``."""
from .module import Module, Parameter, RemovableHandle
from .layers import (Linear, Conv2d, ReLU, Sigmoid, Tanh, Identity, Dropout, Flatten, MaxPool2d,
                     CrossEntropyLoss, MSELoss)
from .containers import Sequential, ModuleList
from .. import functional

__all__ = ["Module", "Parameter", "RemovableHandle", "Linear", "Conv2d", "ReLU", "Sigmoid", "Tanh", "Identity",
           "Dropout", "Flatten", "MaxPool2d", "CrossEntropyLoss", "MSELoss", "Sequential", "ModuleList", "functional"]
