"""Meta-learning algorithms: one file each over the shared inner loop in `inner_loop.py`."""
