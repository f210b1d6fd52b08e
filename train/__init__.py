"""PyTorch side of seedlock: models, layers, losses, datasets and training loops."""
