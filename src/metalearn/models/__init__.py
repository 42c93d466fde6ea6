"""Backbones and heads with no meta-learning in them."""
