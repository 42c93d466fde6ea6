"""`metalearn export`: a meta-learned text checkpoint as a Hugging Face model folder that
transformers loads in a process where metalearn cannot be imported, with the same embeddings,
and a model card that says how it was trained, how it scored and how to adapt it."""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from metalearn.cli import main
from metalearn.inference.loading import load_checkpoint
from metalearn.inference.run_checkpoint import find_checkpoint
from tests.test_predict import Trained, train_runs

TEXTS = ["is the pool open today", "reserve a suite for five nights from June 3rd",
         "express checkout please " * 30]  # the last one longer than the run's max_length (64)

# Run by `python -I -S`: no PYTHONPATH, no user or site folders (so no editable install of
# metalearn); the packages' folder alone is put on sys.path.
CHILD = r"""
import json, sys
sys.path.append(sys.argv[1])
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

folder, texts = sys.argv[2], json.loads(sys.argv[3])
try:
    import metalearn  # noqa: F401
    importable = True
except ModuleNotFoundError:
    importable = False
tokenizer = AutoTokenizer.from_pretrained(folder)
batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
out = {"input_ids": batch["input_ids"].tolist(), "metalearn_importable": importable}
for name, kwargs in (("no_pooler", {"add_pooling_layer": False}), ("plain", {})):
    model = AutoModel.from_pretrained(folder, **kwargs).eval()
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    out[name] = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist()
head = load_file(f"{folder}/head.safetensors")
out["logits"] = (torch.tensor(out["no_pooler"]) @ head["weight"].T + head["bias"]).tolist()
out["metalearn_loaded"] = "metalearn" in sys.modules
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Reptile on examples/intents.csv (attempt 1) and on the sinusoid (attempt 2)."""
    return train_runs(tmp_path_factory.mktemp("export"), "reptile_intents", "reptile_sinusoid")


def export(url: str, *args: str) -> int:
    return main(["--url", url, "export", *args])


def test_the_folder_loads_without_metalearn_and_embeds_as_the_checkpoint(
        trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "model"
    assert export(trained.url, "ckpt=1", f"out={folder}") == 0
    assert f"to {folder}" in capsys.readouterr().out
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "head.safetensors",
            "metalearn.json", "README.md"} <= names
    child = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHILD, sysconfig.get_paths()["purelib"], str(folder),
         json.dumps(TEXTS)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert child.returncode == 0, child.stderr[-3000:]
    got = json.loads(child.stdout.strip().splitlines()[-1])
    assert not got["metalearn_importable"] and not got["metalearn_loaded"]

    loaded = load_checkpoint(find_checkpoint(str(trained.ckpts[1])))
    x = loaded.inputs.encode(TEXTS)
    model = loaded.learner.model
    with torch.no_grad():
        embeddings = model.top.embed(model.features(x))  # [B, H]
        logits = model(x)  # [B, 3]
    assert got["input_ids"] == x["input_ids"].tolist()  # the run's tokenizer and truncation
    assert x["attention_mask"][2].sum() == 64
    for name in ("no_pooler", "plain"):
        assert torch.allclose(torch.tensor(got[name]), embeddings, atol=1e-5, rtol=0), name
    assert torch.allclose(torch.tensor(got["logits"]), logits, atol=1e-5, rtol=0)


def test_the_model_card_says_how_it_was_trained_scored_and_adapted(
        trained: Trained, tmp_path: Path) -> None:
    by_id, by_path = tmp_path / "by_id", tmp_path / "by_path"
    assert export(trained.url, "ckpt=1", f"out={by_id}") == 0
    assert export(trained.url, f"ckpt={trained.ckpts[1]}", f"out={by_path}") == 0
    card = (by_id / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "metalearn train experiment=reptile_intents debug=fast" in card
    assert "held out for meta-test: hotel" in card
    (row,) = [line for line in card.splitlines() if line.startswith("| hotel | acc |")]
    assert "± 0." in row and row.endswith("| 2 | 5 | 5 |")
    assert "metalearn predict ckpt=1 support=few.csv query=new.csv out=predictions.csv" in card
    assert "columns `text` and `intent`" in card
    assert "upload_folder" in card and "push_to_hub" in card
    # by path: the registry's record of that file gives the same table
    path_card = (by_path / "README.md").read_text(encoding="utf-8")
    assert row in path_card and f"metalearn predict ckpt={trained.ckpts[1]} " in path_card
    info = json.loads((by_id / "metalearn.json").read_text(encoding="utf-8"))
    assert info["head"]["outputs"] == 3 and info["max_length"] == 64 and info["algorithm"] == "Reptile"


def test_a_checkpoint_that_is_no_text_model_is_refused_before_it_loads(
        trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from metalearn.inference import loading

    def no_load(*a: object, **k: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "load_checkpoint", no_load)
    assert export(trained.url, "ckpt=2", f"out={tmp_path / 'm'}") == 1
    assert ("ckpt=2 (a numbers model, data SinusoidEpisodes): export writes a Hugging Face text "
            "encoder") in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert export(trained.url, "ckpt=1") == 1
    assert "metalearn export: out= missing" in capsys.readouterr().err
