"""Training: one loop for every trainable family, with checkpoints and exact resume."""

from wmkit.train.loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]
