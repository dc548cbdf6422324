"""Evaluation: what a world model gets right, measured against the true simulator and baselines."""
