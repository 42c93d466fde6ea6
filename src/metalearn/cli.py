"""The `metalearn` command: train, fetch data, follow and compare attempts in the run
registry, or serve the API.

Every value printed that came from a user, a config or the registry goes to rich as `Text`,
never as a markup string: Hydra overrides (`data.heldout=[a,b]`), names and tracebacks hold
brackets that rich would otherwise read as styles, links or emoji codes and drop. Its control
characters are written out as `\x1b` and the like (`_visible`), so a stored name cannot clear
the screen or restyle the terminal. Output to a pipe or a file is not cut to a terminal's width.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from metalearn.data import fetch as data_fetch
from metalearn.inference.settings import EXPORT_KEYS, PREDICT_KEYS
from metalearn.project import find_project_root, is_project
from metalearn.registry import records, report
from metalearn.registry.engine import URL_ENV, default_url
from metalearn.registry.errors import NotFound, RegistryError
from metalearn.registry.schema import STATUSES
from metalearn.registry.store import Store
from metalearn.visible import visible as _visible

log = logging.getLogger("metalearn.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse argv and run the command; registry errors become a message and exit status 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # everything after it is Hydra's, flags included
        return cmd_train(argv[1:])
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except NotFound as exc:
        _console(stderr=True).print(Text(_visible(str(exc)), style="red"), soft_wrap=True)
        return 1
    except RegistryError as exc:
        _console(stderr=True).print(Text.assemble(("registry error:", "red"), " ", _visible(str(exc))),
                                    soft_wrap=True)  # an error is one line whole, at any width
        return 1


DEBUG_HELP = ("also the debug runs (debug=fast, debug=limit, ...: smoke tests of a few steps), "
              "which are left out by default")


def parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    top = argparse.ArgumentParser(prog="metalearn", description=__doc__.split("\n\n")[0])
    top.add_argument("--url", help="registry URL (default: $METALEARN_REGISTRY_URL, else logs/registry.db)")
    top.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = top.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", add_help=False, help="train and meta-test: `metalearn train experiment=NAME "
        "[key=value ...]`, Hydra's command line (--help for its own)")
    train.add_argument("hydra_args", nargs=argparse.REMAINDER)
    train.set_defaults(func=lambda args: cmd_train(args.hydra_args))

    runs = commands.add_parser("runs", help="list, show, compare, export and import attempts")
    sub = runs.add_subparsers(dest="runs_command", required=True)
    ls = sub.add_parser("list", help="attempts, newest first")
    ls.add_argument("--status", action="append", choices=STATUSES, help="repeat for several")
    ls.add_argument("--experiment")
    ls.add_argument("--algorithm")
    ls.add_argument("--study", help="the trials of one sweep (hparams_search=...), by trial number")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    ls.add_argument("--json", action="store_true", help="JSON instead of a table")
    ls.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="config, status, metric summary and test results")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    cmp_ = sub.add_parser("compare", help="config differences and test metrics side by side")
    cmp_.add_argument("ids", type=int, nargs="+")
    cmp_.add_argument("--json", action="store_true")
    cmp_.set_defaults(func=cmd_compare)

    best = sub.add_parser("best", help="attempts ranked by the final value of a metric")
    best.add_argument("--metric", help="default: test/<the attempts' objective metric>, "
                                       "e.g. test/acc or test/mse")
    best.add_argument("--mode", choices=("max", "min"),
                      help="default: the objective's direction (max for acc, min for mse)")
    best.add_argument("--top", type=int, default=5)
    best.add_argument("--status", action="append", choices=STATUSES)
    best.add_argument("--experiment")
    best.add_argument("--algorithm")
    best.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    best.add_argument("--json", action="store_true")
    best.set_defaults(func=cmd_best)

    dump = sub.add_parser("dump", help="everything recorded for an attempt, as one JSON document")
    dump.add_argument("id", type=int)
    dump.add_argument("-o", "--output", help="file to write (default: stdout)")
    dump.set_defaults(func=cmd_dump)

    exp = sub.add_parser("export", help="write finished attempts as records to commit "
                                        "(experiments/records/<experiment>/...)")
    exp.add_argument("ids", type=int, nargs="*", metavar="ID", help="attempts to export")
    exp.add_argument("--experiment", action="append",
                     help="also every completed attempt of this experiment (repeat for several)")
    exp.add_argument("--out", help="records folder (default: experiments/records in the project)")
    exp.add_argument("--url", default=argparse.SUPPRESS, help="registry URL")
    exp.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="load records (files or folders of them) into a registry")
    imp.add_argument("paths", nargs="+", metavar="PATH")
    imp.add_argument("--url", default=argparse.SUPPRESS,
                     help="registry URL (default: the project's logs/registry.db, made if absent)")
    imp.set_defaults(func=cmd_import)

    retract = sub.add_parser("retract", help="withdraw a finished attempt (kept on record, "
                                              "no longer counted as completed)")
    retract.add_argument("id", type=int)
    retract.add_argument("--reason", required=True, help="why, e.g. the bug it was made with")
    retract.set_defaults(func=cmd_retract)

    data_fetch.add_parser(commands)  # metalearn data fetch amazon|omniglot|all

    for name, keys, func, what in (
            ("predict", PREDICT_KEYS, cmd_predict, "adapt a checkpoint to a new task's labelled "
             "examples and predict its queries: ckpt=ID|PATH support=FILE query=FILE [out=FILE]"),
            ("export", EXPORT_KEYS, cmd_export_model, "write a text checkpoint as a Hugging Face "
             "model folder with a model card: ckpt=ID|PATH out=DIR")):
        sub_parser = commands.add_parser(name, help=what, description=what,
                                         epilog="; ".join(f"{k}: {h}" for k, h in keys.items()))
        sub_parser.add_argument("settings", nargs="*", metavar="KEY=VALUE")
        sub_parser.set_defaults(func=func)

    serve = commands.add_parser("serve", help="the HTTP API and the web pages over the registry")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-parallel", type=_positive, default=1, help="training processes at once")
    serve.add_argument("--max-queued", type=_positive, default=16,
                       help="attempts waiting at most; more submissions get 429 (default 16)")
    serve.add_argument("--root", help="the project folder attempts run in (logs/ below it; default: "
                                      "the clone around the current folder, else the current folder)")
    serve.add_argument("--predict-cache", type=_positive, default=2,
                       help="meta-trained checkpoints POST /runs/{id}/predict keeps loaded, least "
                            "recently used out (default 2)")
    serve.set_defaults(func=cmd_serve)
    return top


UNBOUNDED_WIDTH = 1_000_000  # the width of a pipe or file: lines as long as what they hold


def _out() -> Console:
    """A console on the current stdout (so width and redirection are read at print time)."""
    return _console()


def _console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr): a terminal's width, else (a pipe, a file) unbounded
    unless $COLUMNS sets one, so names and paths reach `grep` or a file whole."""
    console = Console(stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = UNBOUNDED_WIDTH
    return console


def _visible_data(value: Any) -> Any:
    """JSON data with `_visible` strings and keys, for a styled JSON view (rich writes C1
    controls and DEL into JSON unescaped)."""
    if isinstance(value, dict):
        return {_visible(str(k)): _visible_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_visible_data(v) for v in value]
    return _visible(value) if isinstance(value, str) else value


def _positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _store(args: argparse.Namespace) -> Store:
    """The registry to read: --url, $METALEARN_REGISTRY_URL, or the existing logs/registry.db
    of the project root (the clone around the current folder, else the current folder, where
    `metalearn train` writes it).

    Reading never creates a registry: where nothing was recorded yet, this says so instead of
    leaving an empty logs/registry.db behind.
    """
    url = args.url or os.environ.get(URL_ENV)
    if url:
        return Store(url)
    root = find_project_root()
    path = root / "logs" / "registry.db"
    if not path.is_file():
        raise RegistryError(f"no registry at {path} yet: run an experiment here first "
                            f"(`metalearn train ...`), or pass --url or set {URL_ENV}")
    return Store(default_url(root))


def _dump(data: Any) -> None:
    """JSON on stdout, unwrapped and unstyled, for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _fmt(value: Any) -> Text:
    """A value as plain text (never markup, control characters written out): — for none, floats
    to 4 decimals."""
    if value is None:
        return Text("—")
    if isinstance(value, float):
        return Text(f"{value:.4f}")
    return Text(_visible(str(value)))


def cmd_train(hydra_args: Sequence[str]) -> int:
    """`metalearn train ...`: the Hydra main of `python run.py ...`; Hydra exits on errors."""
    from metalearn.registry.launch_failure import record_launch_failure
    from metalearn.run import launch  # torch and Lightning load only for this command

    launch(hydra_args, prog="metalearn train", on_launch_failure=record_launch_failure)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """`metalearn predict key=value ...` (metalearn.inference.commands)."""
    from metalearn.inference.commands import run_predict  # torch loads only for this command

    return run_predict(args.settings, open_store=lambda: _store(args))


def cmd_export_model(args: argparse.Namespace) -> int:
    """`metalearn export ckpt=... out=DIR` (metalearn.inference.commands)."""
    from metalearn.inference.commands import run_export

    return run_export(args.settings, open_store=lambda: _store(args))


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    filters = dict(status=args.status, experiment=args.experiment, algorithm=args.algorithm,
                   study=args.study)
    rows = store.list_attempts(**filters, limit=args.limit, debug=None if args.debug else False)
    if args.study is not None:  # a study reads in trial order
        rows.sort(key=lambda r: (r["trial"] is None, r["trial"] or 0, r["id"]))
    if args.json:
        _dump(report.jsonable(rows))
        return 0
    hidden = 0 if args.debug else len(store.list_attempts(**filters, debug=True))
    table = Table(title=_fmt(f"study {args.study}") if args.study is not None else "attempts",
                  caption=_left_out(hidden))
    study = ("trial",) if args.study is not None else ()
    for column in ("id", *study, "name", "kind", "experiment", "algorithm", "status", "started",
                   "ended"):
        table.add_column(column)
    for r in rows:
        trial = (_fmt(r["trial"]),) if args.study is not None else ()
        table.add_row(_fmt(r["id"]), *trial, _fmt(r["name"]), _fmt(r["kind"]),
                      _fmt(r["experiment"]), _fmt(r["algorithm"]), _status(r["status"]),
                      _time(r["started_at"]), _time(r["ended_at"]))
    _out().print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    data = report.show(_store(args), args.id)
    if args.json:
        _dump(data)
        return 0
    head = Table(show_header=False, title=f"attempt {data['id']}")
    for key in ("name", "kind", "parent_id", "experiment", "algorithm", "status", "created_at",
                "started_at", "ended_at", "host", "pid", "git_commit", "output_dir", "ckpt_path",
                "log_name", "study", "trial"):
        head.add_row(key, _status(data[key]) if key == "status" else _fmt(data[key]))
    head.add_row("overrides", _fmt(" ".join(data["overrides"] or [])))
    _out().print(head)
    metrics = Table(title="metrics")
    for column in ("name", "count", "last step", "last", "min", "max"):
        metrics.add_column(column)
    for name, m in data["metrics"].items():
        metrics.add_row(_fmt(name), _fmt(m["count"]), _fmt(m["last_step"]), _fmt(m["last"]),
                        _fmt(m["min"]), _fmt(m["max"]))
    _out().print(metrics)
    if data["test_results"]:
        _out().print(_results_table(data["test_results"]))
    if data["error"]:
        _out().print(Text("error", style="red"), _fmt(data["error"]))
    _out().print("config", style="bold")
    _out().print_json(data=_visible_data(data["config"]))
    return 0


def _results_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="test results")
    for column in ("group", "metric", "value", "ci95", "episodes", "K", "L"):
        table.add_column(column)
    for r in rows:
        table.add_row(_fmt(r["group"]), _fmt(r["metric"]), _fmt(r["value"]), _fmt(r["ci95"]),
                      _fmt(r["episodes"]), _fmt(r["shots"]), _fmt(r["queries"]))
    return table


def cmd_compare(args: argparse.Namespace) -> int:
    data = report.compare(_store(args), args.ids)
    if args.json:
        _dump(data)
        return 0
    heads = [_fmt(f"#{a['id']} {a['name'] or ''}".strip()) for a in data["attempts"]]
    diff = Table(title="config differences")
    diff.add_column("key")
    for h in heads:
        diff.add_column(h)
    diff.add_row("status", *[_status(a["status"]) for a in data["attempts"]])
    diff.add_row("overrides", *[_fmt(" ".join(o)) for o in data["overrides"]])
    for key, values in data["config_diff"].items():
        diff.add_row(_fmt(key), *[_fmt(v) for v in values])
    _out().print(diff)
    scores = Table(title="test metrics")
    scores.add_column("metric")
    for h in heads:
        scores.add_column(h)
    for name, values in data["test_metrics"].items():
        scores.add_row(_fmt(name), *[_fmt(v) for v in values])
    for group, by_metric in data["test_results"].items():
        for metric, values in by_metric.items():
            scores.add_row(_fmt(f"{group} ({metric} ± ci95)"),
                           *[_fmt(None) if v is None else Text.assemble(_fmt(v["value"]), " ± ", _fmt(v["ci95"]))
                             for v in values])
    _out().print(scores)
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    store = _store(args)
    filters = dict(status=args.status, experiment=args.experiment, algorithm=args.algorithm,
                   debug=None if args.debug else False)
    metric, mode = report.ranking(store, args.metric, args.mode, **filters)
    ranked = store.best(metric, mode=mode, limit=args.top, **filters)
    if args.json:
        _dump([{**report.jsonable(a), metric: v} for a, v in ranked])
        return 0
    hidden = 0 if args.debug else len(store.best(
        metric, mode=mode, limit=sys.maxsize, **{**filters, "debug": True}))
    table = Table(title=_fmt(f"best by {metric} ({mode})"), caption=_left_out(hidden))
    for column in ("rank", "id", "name", "experiment", "algorithm", "status", metric):
        table.add_column(_fmt(column))
    for rank, (a, value) in enumerate(ranked, 1):
        table.add_row(_fmt(rank), _fmt(a["id"]), _fmt(a["name"]), _fmt(a["experiment"]),
                      _fmt(a["algorithm"]), _status(a["status"]), _fmt(value))
    _out().print(table)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    data = report.export(_store(args), args.id)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        _out().print(_fmt(f"wrote {args.output}"))
    else:
        _dump(data)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    ids = list(args.ids)
    for experiment in args.experiment or []:
        found = [a["id"] for a in store.list_attempts(status="completed", experiment=experiment)]
        if not found:
            raise RegistryError(f"no completed attempts of experiment {experiment!r}")
        ids.extend(sorted(found))
    if not ids:
        raise RegistryError("name the attempts to export (IDs or --experiment NAME)")
    out = Path(args.out) if args.out else find_project_root() / "experiments" / "records"
    for path, changed in records.export(store, list(dict.fromkeys(ids)), out):
        _out().print(_fmt(f"{'wrote' if changed else 'unchanged'} {path}"), soft_wrap=True)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get(URL_ENV)
    if not url:
        root = find_project_root()
        if not is_project(root):
            raise RegistryError(f"{root} is not in a metalearn project (no run.py and conf/ here "
                                f"or above): run this in one, or pass --url or set {URL_ENV}")
        url = default_url(root)
    done = records.import_records(Store(url), [Path(p) for p in args.paths])
    for path, attempt_id, new in done:
        _out().print(_fmt(f"{'added' if new else 'updated'} attempt {attempt_id} from {path}"),
                     soft_wrap=True)
    return 0


def cmd_retract(args: argparse.Namespace) -> int:
    _store(args).retract(args.id, args.reason)
    _out().print(Text(f"attempt {args.id} retracted"))
    return 0


# What `pip install 'metalearn-lightning[serve]'` adds; the API imports nothing else optional.
SERVE_MODULES = {"fastapi", "fastapi_offline", "uvicorn", "pydantic", "pydantic_core", "starlette",
                 "jinja2", "markupsafe"}


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from metalearn.api.server import serve
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in SERVE_MODULES:
            raise
        Console(stderr=True).print(
            f"[red]metalearn serve needs the `serve` extra[/red] ({exc.name} is not installed): "
            + escape("pip install 'metalearn-lightning[serve]'"), highlight=False, soft_wrap=True)
        return 1

    logging.getLogger("metalearn").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    return serve(url=args.url or default_url(args.root), host=args.host, port=args.port,
                 max_parallel=args.max_parallel, max_queued=args.max_queued, root=args.root,
                 predict_cache=args.predict_cache)


_COLOURS = {"completed": "green", "failed": "red", "interrupted": "yellow", "running": "cyan",
            "testing": "cyan", "queued": "dim", "retracted": "magenta"}


def _left_out(debug_runs: int) -> Text | None:
    """The caption saying how many debug runs a view leaves out, if any."""
    if not debug_runs:
        return None
    return Text(f"{debug_runs} debug run{'s' if debug_runs > 1 else ''} left out (--debug shows them)")


def _status(status: str) -> Text:
    """The status in its colour (the style is set on the text, not parsed from it)."""
    return Text(_visible(str(status)), style=_COLOURS.get(status, "white"))


def _time(value: Any) -> Text:
    return _fmt(value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else None)


if __name__ == "__main__":
    sys.exit(main())
