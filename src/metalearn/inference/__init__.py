"""Using what was meta-learned: a checkpoint adapted to a user's support set, predictions for
their queries (the same adaptation as meta-test), and export to a Hugging Face model folder.

- `run_checkpoint`: a checkpoint found by attempt id or path, with its run's config and record.
- `loading`: the algorithm module rebuilt from that config, the checkpoint's weights in it.
- `inputs`: how the checkpoint's data turned examples into tensors (tokenizer, images, numbers).
- `examples`: the user's support and query files read and checked.
- `predict`: adapt on the support rows and predict the query rows (what the CLI and API call).
- `output`: predictions as CSV rows.
- `cache`: a bounded cache of loaded checkpoints (for a server).
- `export`, `model_card`: the Hugging Face folder and its README.
- `settings`: the `key=value` command lines of `metalearn predict` and `metalearn export`.
"""
