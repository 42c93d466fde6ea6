"""`metalearn predict` and `metalearn export`: their `key=value` command lines run.

Everything that can be checked without the model is checked first (the keys, the checkpoint
file and its run config, the support and query files), then the model is loaded; a bad
request ends with one line naming the key and the file, and status 1. torch, datasets and
transformers load after the known noise is filtered (their progress bars off where stderr is
no terminal), so the imports of those modules sit inside the functions.
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from metalearn.inference.errors import USER_ERRORS, CheckpointError, SettingsError
from metalearn.inference.settings import EXPORT_KEYS, PREDICT_KEYS, listed, parse_settings
from metalearn.registry.errors import RegistryError

if TYPE_CHECKING:
    from metalearn.inference.inputs import Inputs
    from metalearn.inference.run_checkpoint import RunCheckpoint

OpenStore = Callable[[], Any]  # the run registry (a metalearn.registry.Store); may raise RegistryError
COLUMN_KEYS = {"text_column": ("text",), "label_column": ("text", "numbers"), "input_columns": ("numbers",)}


def run_predict(args: Sequence[str], open_store: OpenStore, stdout: TextIO | None = None,
                stderr: TextIO | None = None) -> int:
    """`metalearn predict key=value ...`; returns the exit status."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        settings = parse_settings(args, allowed=PREDICT_KEYS, required=("ckpt", "support", "query"),
                                  command="metalearn predict")
        with _quiet_threads(settings.get("threads", "auto")):
            return _predict(settings, open_store, stdout, stderr)
    except USER_ERRORS as exc:
        stderr.write(f"{exc}\n")
        return 1


def _predict(settings: dict[str, str], open_store: OpenStore, stdout: TextIO, stderr: TextIO) -> int:
    from metalearn.inference.examples import read_examples
    from metalearn.inference.inputs import inputs_of
    from metalearn.inference.loading import describe, load_checkpoint
    from metalearn.inference.output import prediction_rows, write_csv
    from metalearn.inference.predict import adaptation_summary, predict

    run = _checkpoint(settings["ckpt"], open_store)
    inputs = inputs_of(run.config)
    inputs = with_columns(inputs, settings, describe(run, inputs))
    model = describe(run, inputs)
    support = read_examples(settings["support"], key="support", inputs=inputs, labelled=True, model=model)
    query = read_examples(settings["query"], key="query", inputs=inputs, labelled=False, model=model)
    out = settings.get("out")
    if out:
        check_out_file(Path(out).expanduser())
    loaded = dataclasses.replace(load_checkpoint(run, _trusted(settings)), inputs=inputs)
    result = predict(loaded, support, query, labels=listed(settings.get("labels")))
    rows = prediction_rows(query, result, getattr(inputs, "label_column", "label"))
    notes = stderr if not out else stdout
    notes.write(f"{model}: {run.path}\n")
    classes = f", {len(result.classes)} classes ({', '.join(result.classes)})" if result.classes else ""
    notes.write(f"{support.where}: {len(support)} examples{classes}\n")
    notes.write(adaptation_summary(loaded, result) + "\n")
    if result.score is not None:
        notes.write(f"{query.where}: {result.metric} {result.score:.4f} over its {len(query)} "
                    f"labelled rows\n")
    if out:
        path = Path(out).expanduser()
        with path.open("w", encoding="utf-8", newline="") as fh:
            write_csv(rows, fh)
        notes.write(f"wrote {len(rows)} predictions to {path}\n")
    else:
        write_csv(rows, stdout)
    return 0


def run_export(args: Sequence[str], open_store: OpenStore, stdout: TextIO | None = None,
               stderr: TextIO | None = None) -> int:
    """`metalearn export ckpt=... out=DIR`; returns the exit status."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        settings = parse_settings(args, allowed=EXPORT_KEYS, required=("ckpt", "out"),
                                  command="metalearn export")
        with _quiet_threads(settings.get("threads", "auto")):
            from metalearn.inference.export import export_model
            from metalearn.inference.inputs import inputs_of
            from metalearn.inference.loading import describe, load_checkpoint

            run = _checkpoint(settings["ckpt"], open_store)
            inputs = inputs_of(run.config)
            if inputs.kind != "text":  # said before the model loads
                raise CheckpointError(f"{describe(run, inputs)}: export writes a Hugging Face text "
                                      f"encoder; this is not a text model")
            files = export_model(load_checkpoint(run, _trusted(settings)), Path(settings["out"]))
    except USER_ERRORS as exc:
        stderr.write(f"{exc}\n")
        return 1
    stdout.write(f"wrote {len(files)} files to {Path(settings['out']).expanduser()}: "
                 f"{', '.join(p.name for p in files)}\n")
    return 0


def check_out_file(path: Path) -> None:
    """A file `out=` can write: not a folder, in a folder that exists."""
    if path.is_dir():
        raise SettingsError(f"out={path}: a folder; name the CSV file to write")
    if not path.parent.is_dir():
        raise SettingsError(f"out={path}: its folder {path.parent} does not exist")


def _checkpoint(reference: str, open_store: OpenStore) -> RunCheckpoint:
    """The checkpoint; an attempt id needs the registry, a file uses it where there is one."""
    from metalearn.inference.run_checkpoint import find_checkpoint

    if reference.strip().isdigit():
        return find_checkpoint(reference, open_store())
    try:
        store = open_store()
    except RegistryError:
        store = None
    return find_checkpoint(reference, store)


def with_columns(inputs: Inputs, settings: dict[str, str], model: str) -> Inputs:
    """`inputs` with the column names the command line gives; a key another kind of model
    reads is refused by name."""
    changes: dict[str, Any] = {}
    for key, kinds in COLUMN_KEYS.items():
        if not settings.get(key):
            continue
        if inputs.kind not in kinds:
            why = ("its support set is a folder of <class>/<image>" if inputs.kind == "image"
                   else f"it reads no {key}")
            raise SettingsError(f"{key}={settings[key]}: {model} is a {inputs.kind} model ({why})")
        changes[key] = tuple(listed(settings[key])) if key == "input_columns" else settings[key]
    return dataclasses.replace(inputs, **changes) if changes else inputs


def _trusted(settings: dict[str, str]) -> tuple[str, ...]:
    return tuple(listed(settings.get("trust")) or ())


def _threads(value: str) -> int | str:
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise SettingsError(f"threads={value}: auto or a positive integer")
    return int(value)


@contextmanager
def _quiet_threads(setting: str) -> Iterator[None]:
    """The known noise filtered and the torch threads limited, as for training."""
    from metalearn.noise import quiet_known_noise
    from metalearn.threads import limited_threads

    quiet_known_noise()
    with limited_threads(_threads(setting)):
        yield
