"""Training side and CLI of the edge deployment toolkit (MindSpore models on Ascend, GPU and CPU)."""
__version__ = "0.1.0"
