"""Datasets: episodes on disk (versioned, append-safe), collection, and windows as tensors."""

from wmkit.data.dataset import Batch, Dataset, Windows, load_dataset

__all__ = ["Batch", "Dataset", "Windows", "load_dataset"]
