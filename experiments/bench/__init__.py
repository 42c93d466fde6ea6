"""Speed and memory of metalearn's meta-steps, measured side by side in one process.

`python experiments/bench/run.py [--quick]` (see README.md here): a meta-step against a
hand-written loop, the write-up's way, `higher` and TorchOpt; peak memory per algorithm;
achieved GFLOP/s of the inner step against a plain matmul.
"""
