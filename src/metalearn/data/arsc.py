"""The ARSC standard meta-test (Yu et al. 2018): one fixed episode per target task.

Support = every line of `<domain>.<tK>.train` (the benchmark's 5 positive + 5 negative
reviews), query = every line of `<domain>.<tK>.test`. Nothing is sampled, so every run is
scored on exactly the published support and query sets.

`query_split="dev"` (`data.test_protocol: arsc_dev`) scores the target tasks' `.dev` files
instead: Yu et al. choose their settings there, so a test-time setting (steps, step size) can
be chosen the same way and then reported on `.test`, apart from the standard protocol.
"""
from __future__ import annotations

import numpy as np

from metalearn.data.episode import EpisodeSpec
from metalearn.data.sampling import stable_hash

SUPPORT_SPLIT, QUERY_SPLIT = "train", "test"
QUERY_SPLITS = ("test", "dev")


def task_file_episodes(
    families: list[str],
    family_of: np.ndarray,
    split_of: np.ndarray,
    labels: np.ndarray,
    query_limit: int | None = None,
    seed: int = 0,
    query_split: str = QUERY_SPLIT,
) -> list[EpisodeSpec]:
    """One episode per family: its whole .train file as support, its whole .test file (or
    `query_split`'s) as query.

    `family_of`, `split_of`, `labels` are per-example columns of the dataset; episode labels
    are the dataset labels (0 negative, 1 positive). `query_limit` (debug runs only) keeps a
    seeded random subset of that many query reviews per task.
    """
    if query_split not in QUERY_SPLITS:
        raise ValueError(f"the ARSC query split must be one of {QUERY_SPLITS}, got {query_split!r}")
    if not families:
        raise ValueError("the ARSC meta-test needs at least one held-out task family")
    specs = []
    for family in families:
        in_family = family_of == family
        support = np.flatnonzero(in_family & (split_of == SUPPORT_SPLIT))
        query = np.flatnonzero(in_family & (split_of == query_split))
        for split, idx in ((SUPPORT_SPLIT, support), (query_split, query)):
            if len(set(labels[idx].tolist())) < 2:
                domain, task = family.split("/")
                raise ValueError(
                    f"test_protocol=arsc: {domain}.{task}.{split} is missing or lacks one class "
                    f"({len(idx)} reviews); the ARSC meta-test needs both classes in the .train "
                    f"and .{query_split} file of every held-out task")
        if query_limit is not None and len(query) > query_limit:
            rng = np.random.default_rng([seed, stable_hash(family)])
            query = np.sort(rng.choice(query, size=query_limit, replace=False))
        specs.append(EpisodeSpec(family, support.tolist(), labels[support].tolist(),
                                 query.tolist(), labels[query].tolist()))
    return specs
