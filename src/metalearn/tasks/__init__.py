"""Seeded task samplers: fresh episodes for training, fixed lists for evaluation."""
