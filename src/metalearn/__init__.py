"""metalearn: meta-learning as PyTorch Lightning modules, composed with Hydra."""
__version__ = "0.1.0"
