"""The `frontier` command: the same work as the dashboard, headless (a GPU box, CI)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
import yaml

from engine.config import DEVICES, SweepSpec, parse_number_list
from engine.errors import ConfigError, EngineError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure what privacy costs on your data: sweep, cache, and read privacy-utility frontiers.")

STORE_HELP = "Result store (SQLite). Default: $FRONTIER_STORE or ./.frontier/results.sqlite."


def _uploads_dir(store: Optional[Path]) -> Path:
    """Uploaded datasets live in `datasets/` beside the result store (--store, $FRONTIER_STORE or ./.frontier)."""
    from engine.store import resolve_store_path

    return resolve_store_path(store).parent / "datasets"


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _print_frame(frame: pd.DataFrame, output_format: str) -> None:
    if output_format == "json":
        typer.echo(json.dumps(json.loads(frame.to_json(orient="records")), indent=2))
    elif output_format == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    elif output_format == "table":
        typer.echo("(nothing yet)" if frame.empty else frame.to_string(index=False))
    else:
        _fail(f"Unknown --format {output_format!r}: choose table, json or csv.")


@app.command()
def datasets(output_format: str = typer.Option("table", "--format", help="table, json or csv"),
             store: Optional[Path] = typer.Option(None, help=STORE_HELP + " Uploads beside it are listed too.")) -> None:
    """List the datasets (bundled, then uploads beside the store) with their size, label, licence and sensitive columns."""
    from engine.data import dataset_names, get_dataset_info

    uploads = _uploads_dir(store)
    cards = [get_dataset_info(name, uploads).summary() for name in dataset_names(uploads)]
    columns = ["name", "task", "rows", "label", "split", "licence", "sensitive_columns", "bounds"]
    frame = pd.DataFrame(cards)
    _print_frame(frame if output_format != "table" else frame[columns], output_format)


def _spec_from_options(config: Optional[Path], overrides: dict) -> SweepSpec:
    values: dict = {}
    if config is not None:
        if not config.exists():
            raise ConfigError(f"Config file {config} does not exist.")
        try:
            loaded = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config} must hold a mapping of sweep settings (dataset: adult, ...).")
        values.update(loaded.get("sweep", loaded))
    values.update({key: value for key, value in overrides.items() if value is not None})
    return SweepSpec.from_mapping(values).validate()


def _stop_on_sigterm():
    """SIGTERM (the dashboard's Cancel, `kill`) stops a sweep like Ctrl-C: finished runs are kept and the report
    says interrupted. Returns the previous handler, or None off the main thread (where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the interrupted sweep write its report
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


@app.command()
def sweep(
    dataset: Optional[str] = typer.Option(None, help="Bundled dataset (see `frontier datasets`). Default: adult."),
    technique: Optional[str] = typer.Option(None, help="Comma-separated techniques, e.g. baseline,dp-sgd."),
    epsilon: Optional[str] = typer.Option(None, help="Comma-separated target epsilons. Default: 0.05 ... 8."),
    clip: Optional[str] = typer.Option(None, help="Comma-separated per-sample clipping norms C. Default: 1."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds. Default: 0."),
    model: Optional[str] = typer.Option(None, help="logreg, mlp or cnn. Default: mlp for tables, cnn for images. "
                                        "he-inference serves logreg, or mlp as its square-activation twin."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs. Default: 10."),
    batch_size: Optional[int] = typer.Option(None, help="Expected batch size (Poisson sampling). Default: 512."),
    learning_rate: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate. Default: 0.005."),
    hidden_units: Optional[int] = typer.Option(None, "--hidden", help="MLP hidden units. Default: 64."),
    delta: Optional[float] = typer.Option(None, help="Target delta, must be < 1/n_train. Default: 1e-5."),
    accountant: Optional[str] = typer.Option(None, help="prv (default) or rdp."),
    subsample: Optional[int] = typer.Option(None, help="Train on a fixed subset of this many training rows."),
    train_technique: Optional[str] = typer.Option(None, help="he-inference: train the served model with baseline "
                                                  "(default) or dp-sgd (then --epsilon/--clip apply to it)."),
    clients: Optional[int] = typer.Option(None, help="Federated: number of clients. Default: 10 (natural: the silos)."),
    partition: Optional[str] = typer.Option(None, help="Federated: iid (default), dirichlet, natural or quantity."),
    alpha: Optional[float] = typer.Option(None, help="Federated: Dirichlet concentration for dirichlet/quantity. Default: 0.5."),
    partition_column: Optional[str] = typer.Option(None, help="Federated natural partition: the silo column. "
                                                    "Default: the catalogue's silo column (heart: dataset)."),
    rounds: Optional[int] = typer.Option(None, help="Federated: communication rounds. Default: --epochs."),
    local_epochs: Optional[int] = typer.Option(None, help="Federated: client epochs per round. Default: 1."),
    clients_per_round: Optional[int] = typer.Option(None, help="Federated: clients per round (dp-fedavg: expected). "
                                                    "Default: all."),
    secure_aggregation: Optional[bool] = typer.Option(None, "--secure-aggregation/--no-secure-aggregation",
                                                      help="Federated: pairwise-masked sums (Bonawitz et al. 2017)."),
    dropout: Optional[float] = typer.Option(None, help="Federated: chance a picked client drops out mid-round. Default: 0."),
    mu: Optional[float] = typer.Option(None, help="fedprox: proximal term. Default: 0.01."),
    compression: Optional[str] = typer.Option(None, help="Federated uploads: none (default), int8, topk or topk:FRACTION."),
    only_client: Optional[str] = typer.Option(None, help="single-silo: comma-separated clients to train alone. "
                                              "Default: each client."),
    config: Optional[Path] = typer.Option(None, help="YAML sweep spec; flags given here override it."),
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    workers: int = typer.Option(1, help="Worker processes on CPU (each uses one thread)."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train every run of a grid that the store does not already hold, and store each as it finishes."""
    from tqdm import tqdm

    from engine.store import ResultStore
    from engine.sweep import plan_sweep, run_sweep

    try:
        overrides = {
            "dataset": dataset, "model": model, "epochs": epochs, "batch_size": batch_size,
            "learning_rate": learning_rate, "hidden_units": hidden_units, "delta": delta,
            "accountant": accountant, "train_subsample": subsample, "train_technique": train_technique,
            "n_clients": clients, "partition": partition, "alpha": alpha, "partition_column": partition_column,
            "rounds": rounds, "local_epochs": local_epochs, "clients_per_round": clients_per_round,
            "secure_aggregation": secure_aggregation, "dropout": dropout, "mu": mu, "compression": compression,
            "only_clients": tuple(c.strip() for c in only_client.split(",") if c.strip()) if only_client else None,
            "techniques": tuple(t.strip() for t in technique.split(",") if t.strip()) if technique else None,
            "epsilons": parse_number_list(epsilon, float, "--epsilon") if epsilon else None,
            "clipping_norms": parse_number_list(clip, float, "--clip") if clip else None,
            "seeds": parse_number_list(seeds, int, "--seeds") if seeds else None,
        }
        spec = _spec_from_options(config, overrides)
        if device not in DEVICES:
            raise ConfigError(f"Unknown --device {device!r}: choose auto, cpu or cuda.")
        uploads = _uploads_dir(store)
        plan = plan_sweep(spec, None, uploads_dir=uploads)  # every check before anything is written
    except EngineError as exc:
        _fail(str(exc))
    with ResultStore(store) as results:
        cached = len(results.completed_ids(plan.run_ids))
        typer.echo(f"{spec.dataset}: {len(plan.configs)} runs, {cached} cached, {len(plan.configs) - cached} to train "
                   f"(store: {results.path})")
        bar = tqdm(total=len(plan.configs), initial=cached, unit="run", disable=quiet, file=sys.stderr,
                   dynamic_ncols=True)
        failures: list[str] = []

        def on_progress(event) -> None:
            if event.kind in ("finished", "failed"):
                bar.update(1)
                if event.kind == "failed":
                    failures.append(f"{event.config.technique} eps={event.config.target_epsilon} "
                                    f"C={event.config.max_grad_norm} seed={event.config.seed}: {event.error}")
            if event.kind in ("started", "progress", "finished"):
                c = event.config
                label = c.technique if c.target_epsilon is None else f"{c.technique} eps={c.target_epsilon:g}"
                label += f" C={c.max_grad_norm:g}" if c.max_grad_norm is not None else ""  # no C where nothing clips
                bar.set_postfix_str(f"{label} seed={c.seed}", refresh=False)

        previous = _stop_on_sigterm()
        try:
            report = run_sweep(spec, store=results, uploads_dir=uploads, workers=workers, device=device,
                               on_progress=on_progress)
        except EngineError as exc:
            bar.close()
            _fail(str(exc))
        finally:
            if previous is not None and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
                signal.signal(signal.SIGTERM, previous)  # no SIGTERM came; after one, a second must not kill the report
        bar.close()
    typer.echo(f"done: {report.trained} trained, {report.cached} cached, {report.failed} failed"
               f"{' (interrupted: rerun to finish)' if report.interrupted else ''}")
    if len(report.run_ids) <= 5:
        typer.echo(f"run ids: {', '.join(report.run_ids)}")
    for line in failures:
        typer.echo(f"failed: {line}", err=True)
    if report.interrupted:
        raise typer.Exit(130)
    if report.failed:
        raise typer.Exit(1)


RESULT_COLUMNS = ["run_id", "status", "dataset", "technique", "model", "seed", "target_epsilon", "epsilon",
                  "accountant", "max_grad_norm", "noise_multiplier", "accuracy", "balanced_accuracy", "roc_auc",
                  "train_seconds", "device", "error"]


@app.command()
def results(
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    output_format: str = typer.Option("table", "--format", help="table, json (a list of run records) or csv"),
    dataset: Optional[str] = typer.Option(None, help="Only this dataset."),
    technique: Optional[str] = typer.Option(None, help="Only this technique."),
    status: Optional[str] = typer.Option(None, help="ok or failed."),
) -> None:
    """Every stored run (json and csv carry every field of the record)."""
    from engine.store import ResultStore

    try:
        with ResultStore(store, create=False) as opened:
            records = opened.records(dataset=dataset, technique=technique, status=status)
    except EngineError as exc:
        _fail(str(exc))
    if output_format == "json":
        typer.echo(json.dumps(records, indent=2))
        return
    frame = pd.DataFrame(records)
    if output_format == "table" and not frame.empty:
        frame = frame[RESULT_COLUMNS].round(4)
    _print_frame(frame, output_format)


@app.command("frontier")
def frontier_command(
    dataset: Optional[str] = typer.Option(None, help="Only this dataset."),
    metric: str = typer.Option("accuracy", help="accuracy, balanced_accuracy or roc_auc."),
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    show_all: bool = typer.Option(False, "--all", help="Also list configurations that are not on the front."),
    output_format: str = typer.Option("table", "--format", help="table, json or csv"),
) -> None:
    """The Pareto table (metric vs epsilon) per technique, with the non-private baseline for reference."""
    from engine.frontier import baselines, pareto_front, summarise
    from engine.store import ResultStore

    try:
        with ResultStore(store, create=False) as opened:
            runs = opened.dataframe(dataset=dataset)
        summary = summarise(runs, metric)
    except (EngineError, ValueError) as exc:
        _fail(str(exc))
    front = pareto_front(summary, metric)
    if not show_all:
        front = front[front["on_front"]]
    columns = ["dataset", "technique", "model", "target_epsilon", "epsilon", "accountant", "delta",
               "max_grad_norm", f"{metric}_mean", f"{metric}_std", "seeds", "on_front"]
    if output_format != "table":
        _print_frame(front[columns], output_format)
        return
    reference = baselines(summary)
    for _, row in reference.iterrows():
        typer.echo(f"baseline ({row['dataset']}, {row['model']}, no privacy): {metric} "
                   f"{row[f'{metric}_mean']:.4f} ± {row[f'{metric}_std']:.4f} over {row['seeds']} seed(s)")
    typer.echo("epsilon = the largest over seeds, as reported by the named accountant at that delta.")
    typer.echo("note: picking the best clipping norm per epsilon from this table spends privacy too "
               "(each run touched the same private data).")
    table = front[columns].round({"epsilon": 4, f"{metric}_mean": 4, f"{metric}_std": 4})
    _print_frame(table.assign(delta=table["delta"].map("{:.0e}".format)), "table")




@app.command()
def export(
    run_id: str = typer.Argument(..., help="The run to export (see `frontier results`)."),
    out: Path = typer.Option(..., "--out", help="Folder for config.yaml and report.html."),
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    metric: str = typer.Option("accuracy", help="accuracy, balanced_accuracy or roc_auc."),
) -> None:
    """Write OUT/config.yaml (reproduces the run: `frontier sweep --config OUT/config.yaml`) and OUT/report.html."""
    from engine.report import build_export, write_export
    from engine.store import ResultStore

    try:
        with ResultStore(store, create=False) as opened:
            bundle = build_export(run_id, opened, metric, uploads_dir=_uploads_dir(store))
    except EngineError as exc:
        _fail(str(exc))
    config_path, report_path = write_export(bundle, out)
    typer.echo(f"wrote {config_path} and {report_path}")
    if not bundle.reproduces:
        typer.echo("warning: the data or engine changed since this run: the spec would train a new run.", err=True)


if __name__ == "__main__":  # python -m engine.cli
    app()
