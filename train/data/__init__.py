"""Datasets for training: the embedded procedural scenes and loaders for users' own data."""

from seedlock.train.data.scenes import SCENE_CLASSES, make_scene

__all__ = ["SCENE_CLASSES", "make_scene"]
