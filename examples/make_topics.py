"""Write examples/topics.csv: which product line a review is from, a topic problem from the ARSC files.

    python examples/make_topics.py [--arsc ../shared/data/amazon_reviews/arsc] [--out examples/topics.csv]

Sentiment is what the ARSC files label; here each product line (domain) is a topic and the
question is which of two topics a review belongs to, as in topic classification of news. Each
of the 25 domains gives --per-topic reviews of its t2 files (each review once, the first
--chars characters; MiniLM reads at most 128 word pieces), drawn with a fixed seed. Column
`topics` puts them into three families: the 4 ARSC target domains (books, dvd, electronics,
kitchen_housewares) are the meta-test, 4 others the meta-validation and the remaining 17 the
meta-training, so a meta-tested topic was never seen in meta-training. `experiment=*_topics`
(conf/benchmark/topics.yaml) reads it with data=hf_text and draws 2-way episodes within a family.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from metalearn.data.reviews import arsc_rows  # noqa: E402

TEST = ("books", "dvd", "electronics", "kitchen_housewares")   # the ARSC target domains
VAL = ("baby", "music", "software", "toys_games")


def family(topic: str) -> str:
    """The task family a topic's reviews belong to."""
    return "target_topics" if topic in TEST else "validation_topics" if topic in VAL else "training_topics"


def rows(arsc: Path, *, per_topic: int, chars: int, seed: int) -> list[dict[str, str]]:
    """per_topic distinct reviews of every domain's t2 files, in domain order."""
    texts: dict[str, dict[str, None]] = defaultdict(dict)  # insertion-ordered sets
    for text, _, domain, task, _ in arsc_rows(arsc):
        if task == "t2":
            texts[domain][" ".join(text.split())[:chars]] = None
    missing = sorted(set(TEST + VAL) - texts.keys())
    if missing:
        raise ValueError(f"{arsc} lacks the t2 files of {missing}")
    out = []
    for topic in sorted(texts):
        pool = sorted(texts[topic])
        if len(pool) < per_topic:
            raise ValueError(f"{arsc}: {topic} has {len(pool)} distinct t2 reviews, fewer than --per-topic {per_topic}")
        chosen = random.Random(f"{seed}/{topic}").sample(pool, per_topic)
        out += [{"text": t, "topic": topic, "topics": family(topic)} for t in chosen]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arsc", type=Path, default=HERE.parents[1] / "shared" / "data" / "amazon_reviews" / "arsc")
    p.add_argument("--out", type=Path, default=HERE / "topics.csv")
    p.add_argument("--per-topic", type=int, default=30)
    p.add_argument("--chars", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    table = rows(args.arsc, per_topic=args.per_topic, chars=args.chars, seed=args.seed)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "topic", "topics"])
        writer.writeheader()
        writer.writerows(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
