"""`key=value` command lines (`metalearn predict ckpt=12 support=few.csv ...`): Hydra's style,
parsed simply against an allowlist; an unknown, repeated or missing key is refused by name."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from metalearn.inference.errors import SettingsError

CKPT_HELP = "an attempt id (metalearn runs list) or a checkpoint file"
TRUST_HELP = ("module prefixes, comma-separated, whose classes the run's config may name besides "
              "metalearn.* and torch.optim.* (an algorithm of your own)")
THREADS_HELP = "torch CPU threads: auto ($OMP_NUM_THREADS, else 1) or a number"
PREDICT_KEYS = {
    "ckpt": CKPT_HELP,
    "support": "the new task's labelled examples: a CSV file (image models: a folder of <class>/<image>)",
    "query": "the examples to predict: a CSV file (image models: a folder of images)",
    "out": "the CSV file to write (default: standard output)",
    "text_column": "the texts' column (default: the run's data.text_column, else text)",
    "label_column": "the labels' column (default: the run's data.label_column, else label; numbers: y)",
    "input_columns": "number models: the input columns, comma-separated (default: x)",
    "labels": "the class order, comma-separated (default: integers numerically, else sorted)",
    "threads": THREADS_HELP,
    "trust": TRUST_HELP,
}
EXPORT_KEYS = {"ckpt": CKPT_HELP, "out": "the folder to write the model into", "threads": THREADS_HELP,
               "trust": TRUST_HELP}


def parse_settings(args: Sequence[str], *, allowed: Mapping[str, str], required: Sequence[str],
                   command: str) -> dict[str, str]:
    """`key=value` arguments as a dict; `allowed` maps each key to its one-line help.

    Values are taken as written (no interpolation, no evaluation); surrounding quotes are the
    shell's business.
    """
    values: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"{command}: {arg!r} is not key=value ({usage(allowed)})")
        if key not in allowed:
            raise SettingsError(f"{command}: unknown key {key!r}; the keys are {', '.join(allowed)}")
        if key in values:
            raise SettingsError(f"{command}: {key} is given twice")
        values[key] = value.strip()
    missing = [k for k in required if not values.get(k)]
    if missing:
        raise SettingsError(f"{command}: {', '.join(f'{k}=' for k in missing)} missing "
                            f"({usage(allowed)})")
    return values


def usage(allowed: Mapping[str, str]) -> str:
    """The keys and what each means, on one line."""
    return "; ".join(f"{k}: {h}" for k, h in allowed.items())


def listed(value: str | None) -> list[str] | None:
    """A comma-separated value (`labels=neg,pos`, optionally in brackets) as a list."""
    if value is None:
        return None
    inner = value.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    items = [v.strip() for v in inner.split(",")]
    return [v for v in items if v]
