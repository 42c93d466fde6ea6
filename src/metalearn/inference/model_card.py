"""The README.md of an exported model folder: what was meta-learned and how (the training
command, the data families), how well it adapts (the meta-test per group, with 95% intervals,
as the registry recorded it), and how to use it: adapt with `metalearn predict`, load with
`transformers` alone, publish with `push_to_hub`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from metalearn.inference.loading import LoadedCheckpoint
from metalearn.models.pretrained import MINILM_NAMES

FAMILY_KEYS = ("data_files", "path", "text_column", "label_column", "task_column", "group_column",
               "groups", "heldout", "val_groups", "domains", "tasks", "ways", "shots", "queries",
               "max_length")


def model_card(loaded: LoadedCheckpoint, folder: Path) -> str:
    """The card's Markdown, with a Hugging Face metadata header."""
    run, learner = loaded.run, loaded.learner
    config = run.config
    algorithm = type(learner).__name__
    model_cfg = config.get("model") or {}
    pretrained = str(model_cfg.get("pretrained") or "")
    base = ("sentence-transformers/all-MiniLM-L6-v2"
            if pretrained.lower() in MINILM_NAMES and not model_cfg.get("random_init") else None)
    name = config.get("task_name") or "metalearn"
    lines = ["---", "library_name: transformers", "pipeline_tag: feature-extraction",
             f"tags: [metalearn, meta-learning, few-shot, {algorithm.lower()}]"]
    if base:
        lines.append(f"base_model: {base}")
    lines += ["---", "", f"# {name}: {algorithm}, meta-learned with metalearn", "",
              f"A text encoder meta-learned with {algorithm} ({loaded.objective.name}), "
              f"mean-pooled, with the linear head it learned ({learner.model.top.head.out_features} "
              f"outputs). Exported from the checkpoint `{run.path}`"
              + (f" (attempt {run.attempt_id} in the run registry)." if run.attempt_id else "."), ""]
    lines += ["## Training", "", "```", run.command or "(the training command was not recorded)",
              "```", "", *data_lines(config), ""]
    lines += ["## Meta-test", "", *results_lines(run.test_results), ""]
    lines += adapt_lines(loaded) + [""]
    lines += load_lines(folder) + [""]
    lines += publish_lines(folder)
    return "\n".join(lines) + "\n"


def data_lines(config: dict[str, Any]) -> list[str]:
    """The data the run meta-trained and meta-tested on: its source and families."""
    data = config.get("data") or {}
    source = str(data.get("_target_", "")).rsplit(".", 1)[-1]
    out = [f"Data: `{source}`."]
    if source == "ReviewEpisodes":
        heldout = list(data.get("heldout") or [])
        domains = [d for d in data.get("domains") or [] if d not in heldout]
        out.append(f"Task families: sentiment (negative/positive) per Amazon product domain and "
                   f"rating threshold. Meta-trained on {len(domains)} domains "
                   f"({', '.join(domains) or 'all but the held-out'}); meta-tested on the held-out "
                   f"{', '.join(heldout)}.")
    elif source == "HFTextEpisodes":
        out.append(f"Task families: one per value of `{data.get('task_column')}`, classes from "
                   f"`{data.get('label_column')}`; held out for meta-test: "
                   f"{_listed(data.get('heldout')) or 'a seeded share of the groups'}.")
    settings = [f"`{k}`: {_listed(data[k])}" for k in FAMILY_KEYS if data.get(k) is not None]
    if settings:
        out += ["", "Data settings: " + "; ".join(settings) + "."]
    return out


def _listed(value: Any) -> str:
    """A config value as text: a list comma-separated."""
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def results_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The meta-test per group as a Markdown table (mean and 95% interval over its episodes)."""
    if not rows:
        return ["No meta-test results are recorded for this checkpoint (exported from a file the "
                "run registry does not know): `metalearn train train=false ckpt_path=...` "
                "meta-tests it."]
    pre = any(r.get("value_pre") is not None for r in rows)  # where the registry keeps it
    out = ["| group | metric | mean | 95% interval | " + ("before adapting | " if pre else "")
           + "episodes | K | L |", "|---" * (7 + pre) + "|"]
    for r in rows:
        before = ("" if not pre else "— | " if r.get("value_pre") is None
                  else f"{r['value_pre']:.4f} | ")
        out.append(f"| {r['group']} | {r['metric']} | {r['value']:.4f} | ± {r['ci95']:.4f} | {before}"
                   f"{r['episodes']} | {r['shots']} | {r['queries']} |")
    return out


def adapt_lines(loaded: LoadedCheckpoint) -> list[str]:
    """How to adapt it to a new task: metalearn predict, with the checkpoint's own rule."""
    inputs = loaded.inputs
    learner = loaded.learner
    rule = "prototypes (class means of the support embeddings)"
    if hasattr(learner, "eval_inner_steps"):
        rate = getattr(learner, "eval_inner_lr", None)
        rate = learner.inner_lr if rate is None else rate
        rule = f"{learner.eval_inner_steps} SGD steps of size {rate:g} on the support set"
        if getattr(learner, "eval_adapt_check", False):
            rule += ", declined where they do not lower the loss on held-out support rows"
    return ["## Adapting it to a new task", "",
            f"The meta-learned weights are a starting point: a new task adapts them on a few "
            f"labelled examples ({rule}). metalearn does that with the original checkpoint:", "",
            "```",
            f"metalearn predict ckpt={loaded.run.reference} support=few.csv query=new.csv "
            f"out=predictions.csv",
            "```", "",
            f"`few.csv` holds the columns `{inputs.text_column}` and `{inputs.label_column}`, "
            f"`new.csv` the column `{inputs.text_column}`; the output has one row per query with "
            f"the predicted label and one `p(<label>)` column per class."]


def load_lines(folder: Path) -> list[str]:
    """Loading the folder with transformers alone."""
    return ["## Loading it without metalearn", "", "```python",
            "import torch",
            "from safetensors.torch import load_file",
            "from transformers import AutoModel, AutoTokenizer", "",
            f'folder = "{folder.name}"',
            "tokenizer = AutoTokenizer.from_pretrained(folder)",
            "model = AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()",
            'batch = tokenizer(["great value", "broke in a week"], padding=True, truncation=True, '
            'return_tensors="pt")',
            "with torch.no_grad():",
            "    hidden = model(**batch).last_hidden_state  # [B, T, H]",
            'mask = batch["attention_mask"].unsqueeze(-1).float()',
            "embeddings = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # [B, H], mean-pooled",
            'head = load_file(f"{folder}/head.safetensors")',
            'logits = embeddings @ head["weight"].T + head["bias"]  # [B, outputs]',
            "```", "",
            "The encoder has no pooler (metalearn mean-pools); without `add_pooling_layer=False` "
            "transformers adds an untrained one and says so. The tokenizer truncates at the "
            "run's `max_length`; `metalearn.json` says what the head's outputs are."]


def publish_lines(folder: Path) -> list[str]:
    """Publishing the folder on the Hugging Face Hub."""
    return ["## Publishing it", "", "```python",
            "from huggingface_hub import HfApi  # after `huggingface-cli login`", "",
            f'HfApi().upload_folder(folder_path="{folder.name}", repo_id="<you>/<name>", '
            'repo_type="model")',
            "```", "",
            "uploads everything here (this card, the head and `metalearn.json` included); "
            "`model.push_to_hub(\"<you>/<name>\")` and `tokenizer.push_to_hub(...)` upload the "
            "encoder and tokenizer alone."]
