"""The `frontier` command: the same work as the dashboard, headless (a GPU box, CI).

`frontier sweep`'s options are generated from the settings' declarations (shared ones in engine.config,
each technique's on the technique), so a technique's new setting is a new flag with no edit here. Errors
name settings by their flags (`--clients`), one line on stderr, exit code 2.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from typer.core import TyperGroup
import yaml

from engine.config import DEVICES
from engine.errors import ConfigError, EngineError
from engine.settings import Setting
from engine.techniques.registry import PLUGINS_ENVIRONMENT_VARIABLE, load_plugins
from engine.workspace import STORE_ENVIRONMENT_VARIABLE, Workspace

STORE_HELP = f"Result store (SQLite). Default: ${STORE_ENVIRONMENT_VARIABLE} or ./.frontier/results.sqlite."
RESULT_COLUMNS = ["run_id", "status", "dataset", "technique", "model", "seed", "target_epsilon", "epsilon",
                  "accountant", "max_grad_norm", "noise_multiplier", "accuracy", "balanced_accuracy", "roc_auc",
                  "train_seconds", "device", "error"]


METRIC_HELP = ("accuracy, balanced_accuracy or roc_auc. Default: the one that fits the label (accuracy for a label "
               "declared balanced, else balanced accuracy, which always predicting the commonest class cannot fool).")


def _flag_names() -> dict[str, str]:
    from engine.runner.spec import all_settings

    from engine.runner.cluster import ClusterSettings

    return {name: declared.cli_flag for name, declared in all_settings().items()} | {"workers": "--workers",
                                                                                      "device": "--device"} | \
        {declared.name: declared.cli_flag for declared in ClusterSettings.declared()}


def _fail(error: EngineError | str, code: int = 2) -> None:
    message = error.describe(lambda name: _flag_names().get(name, name)) if isinstance(error, EngineError) else error
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


def _stop_on_sigterm():
    """SIGTERM (`kill`, a CI timeout) stops a sweep like Ctrl-C: finished runs are kept and the report says
    interrupted. Returns the previous handler, or None off the main thread (where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the interrupted sweep write its report
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _setting_option(declared: Setting) -> inspect.Parameter:
    """A Typer option for one declared setting. Values arrive as text and are parsed by the declaration, so
    every mistake is the declaration's one-line error (a bool is a --x/--no-x pair)."""
    default = declared.default
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    help_text = declared.help + (f" Default: {shown}." if shown is not None and "Default:" not in declared.help else "")
    if declared.kind is bool:
        flag = declared.cli_flag
        option = typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False)
        annotation = Optional[bool]
    else:
        option = typer.Option(None, declared.cli_flag, help=help_text, show_default=False)
        annotation = Optional[str]
    return inspect.Parameter(declared.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def _read_yaml(path: Path) -> tuple[dict, dict | None]:
    """(sweep settings, the `upload:` section or None) of a config file: flat settings, or `sweep:` beside an
    optional `upload:` (an export of a run on an uploaded CSV carries its schema there)."""
    if not path.exists():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if loaded is None:  # never the default sweep in place of a file that says nothing
        raise ConfigError(f"{path} is empty: write the sweep's settings in it (dataset: adult, ...).")
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of sweep settings (dataset: adult, ...).")
    loaded = dict(loaded)
    upload = loaded.pop("upload", None)
    if "sweep" in loaded and len(loaded) > 1:
        raise ConfigError(f"{path}: beside `sweep:` only `upload:` may be given, got "
                          f"{', '.join(sorted(str(key) for key in loaded if key != 'sweep'))}.")
    values = loaded.get("sweep", loaded)
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: `sweep:` must hold a mapping of sweep settings.")
    return values, upload


def _sweep_command(config: Optional[Path], store: Optional[Path], workers: str, device: str, quiet: bool,
                   flags: dict, audit: bool = False, cluster_flags: dict | None = None) -> None:
    """Train every run of a grid that the store does not already hold, and store each as it finishes."""
    from tqdm import tqdm

    from engine import services
    from engine.data.uploads.schema import read_schema
    from engine.runner.spec import all_settings

    workspace = Workspace.at(store)
    try:
        values, upload_section = _read_yaml(config) if config is not None else ({}, None)
        declared = all_settings()
        for name, text in flags.items():
            if text is not None:
                values[name] = text if isinstance(text, bool) else declared[name].parse_text(text)
        spec = services.read_spec(values)
        if upload_section is not None:  # an export of a run on an upload: this store must hold that very table
            services.check_upload(read_schema(upload_section, f"{config} (upload:)"), spec.dataset, workspace,
                                  str(config))
        worker_count = Setting("workers", int, minimum=1, maximum=256).parse_text(workers)
        if device not in DEVICES:
            raise ConfigError(f"Unknown --device {device!r}: choose auto, cpu or cuda.")
        cluster = _cluster_settings(cluster_flags or {})
        cluster.check(device)  # --backend ray: ray installed, and a GPU per task for --device cuda
        plan = services.plan(spec, workspace)  # every check before anything is written
    except EngineError as exc:
        _fail(exc)
    cached = len(plan.cached_ids)
    typer.echo(f"{spec.dataset}: {len(plan.configs)} runs, {cached} cached, {len(plan.configs) - cached} to train "
               f"(store: {workspace.store_path})")
    bar = tqdm(total=len(plan.configs), initial=cached, unit="run", disable=quiet, file=sys.stderr, dynamic_ncols=True)
    failures: list[str] = []

    def on_progress(event) -> None:
        from engine.present.labels import run_label

        if event.kind in ("finished", "failed", "elsewhere"):
            bar.update(1)
            if event.kind == "failed":
                failures.append(f"{run_label(event.config)}: {event.error}")
        if event.kind in ("started", "progress", "finished"):
            bar.set_postfix_str(run_label(event.config), refresh=False)

    previous = _stop_on_sigterm()
    try:
        report = services.run(plan, workspace, workers=worker_count, device=device, on_progress=on_progress,
                              cluster=cluster)
    except EngineError as exc:
        bar.close()
        _fail(exc)
    finally:
        if previous is not None and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
            signal.signal(signal.SIGTERM, previous)  # no SIGTERM came; after one, a second must not kill the report
    bar.close()
    elsewhere = getattr(report, "elsewhere", 0)  # runs another sweep on this store trained meanwhile (run claims)
    typer.echo(f"done: {report.trained} trained, {report.cached} cached, "
               f"{f'{elsewhere} trained by another sweep, ' if elsewhere else ''}{report.failed} failed"
               f"{' (interrupted: rerun to finish)' if report.interrupted else ''}")
    if len(report.run_ids) <= 5:
        typer.echo(f"run ids: {', '.join(report.run_ids)}")
    for line in failures:
        typer.echo(f"failed: {line}", err=True)
    if report.interrupted:
        raise typer.Exit(130)
    breach = _audit_runs(workspace, report.run_ids, device, quiet) if audit else False
    if report.failed:
        raise typer.Exit(1)
    if breach:
        raise typer.Exit(AUDIT_BREACH_EXIT)


def _cluster_settings(texts: dict):
    """--backend and the --ray-* flags, each parsed by its declaration (engine.runner.cluster)."""
    from engine.runner.cluster import ClusterSettings

    declared = {setting.name: setting for setting in ClusterSettings.declared()}
    return ClusterSettings.from_values({name: declared[name].parse_text(text) for name, text in texts.items()
                                        if text is not None})


def _make_sweep():
    from engine.runner.cluster import ClusterSettings
    from engine.runner.spec import all_settings

    settings = all_settings()
    cluster = ClusterSettings.declared()

    def sweep(**options) -> None:
        config, store = options.pop("config"), options.pop("store")
        workers, device, quiet = options.pop("workers"), options.pop("device"), options.pop("quiet")
        cluster_flags = {declared.name: options.pop(declared.name) for declared in cluster}
        _sweep_command(config, store, workers, device, quiet, options, audit=options.pop("audit"),
                       cluster_flags=cluster_flags)

    fixed = [
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                          default=typer.Option(None, help="YAML sweep spec; flags given here override it.")),
        inspect.Parameter("store", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                          default=typer.Option(None, help=STORE_HELP)),
        inspect.Parameter("workers", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                          default=typer.Option("1", help="Worker processes on CPU (each uses one thread).")),
        inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                          default=typer.Option("auto", help="auto (CUDA when present), cpu or cuda.")),
        inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, "--quiet", help="No progress bar.")),
        inspect.Parameter("audit", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, "--audit", help=AUDIT_SWEEP_HELP)),
    ]
    sweep.__signature__ = inspect.Signature([*(_setting_option(s) for s in settings.values()), *fixed,
                                             *(_setting_option(s) for s in cluster)])
    sweep.__doc__ = _sweep_command.__doc__
    return sweep


class _OneLineErrors(TyperGroup):
    """Click's own usage errors (an unknown option, a missing value, `--seed -1` read as an option) as one
    `error:` line with exit 2, like every other refusal, instead of a usage box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            typer.echo("error: interrupted.", err=True)
            sys.exit(1)
        except typer.TyperException as exc:  # Click's usage errors (Typer vendors Click: its public base class)
            context = getattr(exc, "ctx", None)
            command = f" {context.command.name}" if context is not None and context.command is not self else ""
            typer.echo(f"error: {exc.format_message()} (see `frontier{command} --help`)", err=True)
            sys.exit(getattr(exc, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


def build_app() -> typer.Typer:
    """The command, with options for every registered technique's settings (load plugins first)."""
    app = typer.Typer(cls=_OneLineErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      help="Measure what privacy costs on your data: sweep, cache, and read privacy-utility frontiers.")
    app.command("sweep")(_make_sweep())
    app.command("datasets")(datasets)
    app.command("upload")(upload)
    app.command("results")(results)
    app.command("frontier")(frontier_command)
    app.command("export")(export)
    app.command("verify")(verify)
    app.command("gate")(gate_command)
    app.command("audit")(audit_command)
    app.command("synth")(synth_command)
    return app


def datasets(output_format: str = typer.Option("table", "--format", help="table, json or csv"),
             store: Optional[Path] = typer.Option(None, help=STORE_HELP)) -> None:
    """List the datasets (bundled, and uploaded beside the store) with size, label, licence, sensitive columns."""
    from engine.data import dataset_names, get_dataset_info

    uploads = Workspace.at(store).uploads_dir
    cards = [get_dataset_info(name, uploads).summary() for name in dataset_names(uploads)]
    columns = ["name", "task", "rows", "label", "split", "licence", "sensitive_columns", "bounds"]
    frame = pd.DataFrame(cards)
    _print_frame(frame if output_format != "table" else frame[columns], output_format)


def upload(
    csv_file: Path = typer.Argument(..., metavar="FILE.csv", help="The CSV (comma, semicolon or tab separated, "
                                    "with a header row)."),
    label: Optional[str] = typer.Option(None, help="The label column (the outcome to predict). Default: the schema's."),
    schema: Optional[Path] = typer.Option(None, help="schema.yaml, or an exported config.yaml: label, kept columns, "
                                          "public bounds and categories (see README)."),
    name: Optional[str] = typer.Option(None, help="Dataset name. Default: the schema's, else made from the file name."),
    positive: Optional[str] = typer.Option(None, help="The positive class. Default: the schema's, else the rarer of "
                                           "two values."),
    replace: bool = typer.Option(False, "--replace", help="Replace an earlier upload of that name holding other data."),
    undeclared: Optional[str] = typer.Option(None, help="Bounds and categories not declared: dp (default: a DP "
                                             "estimate, composed into every run) or data (read from the rows, "
                                             "data-derived). Default: the schema's, else dp."),
    preprocessing_epsilon: Optional[float] = typer.Option(None, help="Epsilon in all for the DP estimates "
                                                          "(default: the schema's, else 0.1)."),
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
) -> None:
    """Register a CSV as a dataset beside the store, as the Data page does: suspected identifiers are dropped
    (never stored), and undeclared bounds and categories are DP estimates (or, with --undeclared data, read from
    the rows and recorded as data-derived)."""
    import dataclasses

    from engine import services
    from engine.data.uploads.schema import UploadSchema, schema_from_yaml

    workspace = Workspace.at(store)
    try:
        if not csv_file.is_file():
            raise ConfigError(f"{csv_file} is not a file: give the path of a CSV.")
        declared = schema_from_yaml(schema.read_text(encoding="utf-8"), str(schema)) if schema else UploadSchema()
        if not schema and not label:
            raise ConfigError("Say which column is the label: --label COLUMN (or --schema schema.yaml).")
        declared = dataclasses.replace(declared, label=label or declared.label, name=name or declared.name,
                                       positive=positive or declared.positive,
                                       undeclared=undeclared or declared.undeclared,
                                       preprocessing_epsilon=preprocessing_epsilon or declared.preprocessing_epsilon)
        info = services.upload(csv_file.read_bytes(), csv_file.name, declared, workspace, replace=replace)
    except (EngineError, OSError) as exc:
        _fail(exc if isinstance(exc, EngineError) else f"cannot read {exc.filename}: {exc.strerror}.")
    kept = [*info.numeric, *info.categorical]
    typer.echo(f"registered {info.name} (fingerprint {info.fingerprint}): {info.rows} rows, label "
               f"{info.label['column']} = {info.label['positive']}, in {info.folder}")
    typer.echo(f"kept {len(kept)} column(s): {', '.join(kept)}")
    typer.echo(f"dropped as identifiers (never stored): {', '.join(info.identifier_columns) or 'none'}")
    typer.echo(f"dropped: {', '.join(info.drop_columns) or 'none'}")
    typer.echo(f"bounds or categories read from the rows (not covered by epsilon): "
               f"{', '.join(info.data_derived_columns) or 'none'}")
    if info.preprocessing_privacy:
        typer.echo(f"bounds or categories estimated with DP (epsilon {info.preprocessing_privacy['epsilon']:g}, "
                   f"composed into every run on it): {', '.join(info.dp_estimated_columns)}")
    for warning in (info.upload or {}).get("warnings", []):
        typer.echo(f"warning: {warning}", err=True)


def results(
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    output_format: str = typer.Option("table", "--format", help="table, json (a list of run records) or csv"),
    dataset: Optional[str] = typer.Option(None, help="Only this dataset."),
    technique: Optional[str] = typer.Option(None, help="Only this technique."),
    status: Optional[str] = typer.Option(None, help="ok or failed."),
) -> None:
    """Every stored run (json and csv carry every field of the record)."""
    from engine import services

    try:
        records = services.records(Workspace.at(store), dataset=dataset, technique=technique, status=status)
    except EngineError as exc:
        _fail(exc)
    if output_format == "json":
        typer.echo(json.dumps(records, indent=2))
        return
    frame = pd.DataFrame(records)
    if output_format == "table" and not frame.empty:
        frame = frame[[column for column in RESULT_COLUMNS if column in frame]].round(4)
    _print_frame(frame, output_format)


def frontier_command(
    dataset: Optional[str] = typer.Option(None, help="Only this dataset."),
    metric: Optional[str] = typer.Option(None, help=METRIC_HELP),
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    show_all: bool = typer.Option(False, "--all", help="Also list configurations that are not on the front."),
    output_format: str = typer.Option("table", "--format", help="table, json or csv"),
) -> None:
    """The Pareto table (metric vs epsilon) per technique, with the non-private baseline for reference."""
    from engine import services
    from engine.analysis.frontier import baselines, pareto_front, summarise

    workspace = Workspace.at(store)
    try:
        if not workspace.store_path.exists():
            raise ConfigError(f"No result store at {workspace.store_path}: run `frontier sweep` first or pass --store.")
        runs = services.read_runs(workspace)
        runs = runs if dataset is None else runs[runs["dataset"] == dataset]
        metric = metric or services.default_metric(workspace, runs["dataset"].unique())
        summary = summarise(runs, metric)
    except (EngineError, ValueError) as exc:
        _fail(exc if isinstance(exc, EngineError) else str(exc))
    front = pareto_front(summary, metric)
    if not show_all:
        front = front[front["on_front"]]
    columns = ["dataset", "technique", "model", "target_epsilon", "epsilon", "accountant", "delta",
               "max_grad_norm", f"{metric}_mean", f"{metric}_std", "trivial", "learned", "seeds", "on_front"]
    if output_format != "table":
        _print_frame(front[columns], output_format)
        return
    for _, row in baselines(summary).iterrows():
        typer.echo(f"baseline ({row['dataset']}, {row['model']}, no privacy): {metric} "
                   f"{row[f'{metric}_mean']:.4f} ± {row[f'{metric}_std']:.4f} over {row['seeds']} seed(s)")
    rows = "validation" if (summary["split"] == "validation").all() else "validation or (older runs) test"
    typer.echo(f"{metric} on the {rows} rows; trivial = what always predicting the commonest class scores; "
               "learned = False: no better than that within seed noise (never a point on the front).")
    typer.echo("epsilon = the largest over seeds, as reported by the named accountant at that delta.")
    typer.echo("note: picking the best clipping norm per epsilon from this table spends privacy too "
               "(each run touched the same private data).")
    table = front[columns].round({"epsilon": 4, f"{metric}_mean": 4, f"{metric}_std": 4, "trivial": 4})
    _print_frame(table.assign(delta=table["delta"].map("{:.0e}".format)), "table")


def export(
    run_id: str = typer.Argument(..., help="The run to export (see `frontier results`)."),
    out: Path = typer.Option(..., "--out", help="Folder for config.yaml and report.html."),
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    metric: Optional[str] = typer.Option(None, help=METRIC_HELP),
    include_audit: bool = typer.Option(False, "--include-audit", help="Put the run's audit figures in the report "
                                       "(they were computed on the private data; a breach is flagged regardless)."),
    pdf: bool = typer.Option(False, "--pdf", help="Also OUT/report.pdf for filing (charts as images; printed by the "
                             "machine's Chromium, offline)."),
) -> None:
    """Write OUT/config.yaml (reproduces the run: `frontier sweep --config OUT/config.yaml`), OUT/report.html and
    OUT/decision.json (the decision record, with its content hash; `frontier gate --record` checks it)."""
    from engine import services
    from engine.present.pdf import html_to_pdf
    from engine.present.report import write_export

    try:
        bundle = services.export(Workspace.at(store), run_id, metric, include_audit=include_audit, pdf=pdf)
        config_path, report_path = write_export(bundle, out)
        pdf_path = html_to_pdf(bundle.printable_html, out / "report.pdf") if pdf else None
    except EngineError as exc:
        _fail(exc)
    typer.echo(f"wrote {config_path} and {report_path}")
    if bundle.decision_json is not None:
        typer.echo(f"wrote {out / 'decision.json'} (content hash {json.loads(bundle.decision_json)['content_hash']})")
    if pdf_path is not None:
        typer.echo(f"wrote {pdf_path}")
    if not bundle.reproduces:
        typer.echo("warning: the data or engine changed since this run: the spec would train a new run.", err=True)


def verify(
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    dataset: Optional[str] = typer.Option(None, help="Only this dataset."),
) -> None:
    """Recompute every private run's epsilon and each dataset's composed epsilon with Google's dp-accounting from
    the stored parameters, independently of the accountant that recorded them. Exit 1 on any disagreement."""
    from engine import services

    try:
        result = services.verify(Workspace.at(store), dataset)
    except EngineError as exc:
        _fail(exc)
    for name, (ours, independent) in sorted(result.compositions.items()):
        typer.echo(f"{name}: composed epsilon {ours:.4g} (engine) vs {independent:.4g} (dp-accounting PLD)"
                   + (f", the table's DP preprocessing (epsilon {result.preprocessing[name]:g}) included"
                      if name in result.preprocessing else ""))
    for finding in result.findings:
        typer.echo(f"FAIL {finding.run_id}: {finding.message}", err=True)
    typer.echo(f"{result.checked} private runs checked: "
               + ("every figure holds." if result.ok else f"{len(result.findings)} problem(s)."))
    if not result.ok:
        raise typer.Exit(1)


def synth_command(
    run_id: str = typer.Argument(..., help="A dp-synthetic run (see `frontier results`)."),
    out: Path = typer.Option(..., "--out", help="Where to write the synthetic table (CSV)."),
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
) -> None:
    """Write a dp-synthetic run's synthetic table as CSV: the one artefact safe to share at the run's epsilon."""
    import gzip

    from engine import services
    from engine.present.synthetic import share_sentence

    try:
        path, record = services.synthetic_table(Workspace.at(store), run_id)
        out.write_bytes(gzip.decompress(path.read_bytes()))
    except EngineError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(f"Cannot write {out} ({exc.strerror or exc}): choose a writable path.")
    typer.echo(f"wrote {out}")
    typer.echo(share_sentence(record))


def gate_command(
    policy: Path = typer.Argument(..., metavar="POLICY.yaml", help="The limits to hold (README: 'Privacy gate')."),
    run: Optional[str] = typer.Option(None, "--run", help="Gate this stored run (see `frontier results`)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Gate the run an exported config.yaml trains "
                                          "(retrain it first: frontier sweep --config EXPORT.yaml)."),
    record: Optional[Path] = typer.Option(None, "--record", help="Gate a filed decision.json (its hash is checked)."),
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write a JUnit XML report (one test case per rule)."),
    json_report: Optional[Path] = typer.Option(None, "--json", help="Write a JSON report."),
) -> None:
    """Check a chosen run against a privacy policy, as a CI test: every privacy figure recomputed with dp-accounting,
    the training table rescanned for identifiers. Exit 0: every rule holds; 1: a rule fails; 2: bad input."""
    from engine import services
    from engine.gate.policy import read_policy
    from engine.gate.report import write_reports

    workspace = Workspace.at(store)
    try:
        if sum(given is not None for given in (run, config, record)) != 1:
            raise ConfigError("Say what to gate: exactly one of --run RUN_ID, --config EXPORT.yaml or --record "
                              "DECISION.json.")
        if not policy.is_file():
            raise ConfigError(f"Policy file {policy} does not exist: write one (README: 'Privacy gate').")
        rules = read_policy(policy.read_text(encoding="utf-8"), str(policy))
        if record is not None:
            outcome = services.gate(workspace, rules, record=_read_json(record), source=str(record))
        else:
            run_id = run if config is None else services.exported_run(workspace, *_read_yaml(config), str(config))
            outcome = services.gate(workspace, rules, run_id=run_id)
        write_reports(outcome, junit, json_report)
    except (EngineError, OSError) as exc:
        _fail(exc if isinstance(exc, EngineError) else f"cannot read or write {exc.filename}: {exc.strerror}.")
    for line, result in zip(outcome.lines(), outcome.results):
        typer.echo(line, err=result.status == "fail")
    failed = len(outcome.failures)
    typer.echo(f"gate {'failed' if failed else 'passed'}: {outcome.source}, "
               f"{failed} of {len(outcome.results)} rules failed, "
               f"{sum(r.status == 'skip' for r in outcome.results)} skipped")
    if failed:
        raise typer.Exit(1)


def _read_json(path: Path):
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: give the decision.json that `frontier export` wrote.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not JSON ({exc}): give the decision.json that `frontier export` wrote.") from None


AUDIT_BREACH_EXIT = 3  # `frontier audit` / `sweep --audit`: a measured lower bound above a run's epsilon
AUDIT_SWEEP_HELP = ("After training, audit every run of the sweep with the one-run canary audit (one extra training "
                    "each; see `frontier audit`). Exit code 3 if any audit measures a leak above the guarantee.")


def _audit_runs(workspace: Workspace, run_ids, device: str, quiet: bool, settings=None) -> bool:
    """Audit each run (answered from the store when done before); prints each; True if any breach."""
    from tqdm import tqdm

    from engine import services
    from engine.audit.settings import AuditSettings
    from engine.present.audit import READS_PRIVATE_DATA, figures_lines

    if len(run_ids) == 1:  # a wrong store or run id is one line, before any note or progress bar
        try:
            known = set(services.read_runs(workspace)["run_id"]) if workspace.store_path.exists() else None
        except EngineError as exc:
            _fail(exc)
        if known is None:
            _fail(f"No result store at {workspace.store_path}: run `frontier sweep` first or pass another store path.")
        if run_ids[0] not in known:
            _fail(f"No run {run_ids[0]!r} in {workspace.store_path}: list runs with `frontier results`.")
    typer.echo(f"note: {READS_PRIVATE_DATA}")
    breach = False
    for run_id in run_ids:
        bar = tqdm(total=1.0, unit="model", disable=quiet, file=sys.stderr, dynamic_ncols=True,
                   bar_format="{l_bar}{bar}| {postfix}")

        def on_progress(progress, bar=bar) -> None:
            bar.n = min(1.0, round((progress.models_done + progress.fraction) / progress.models_total, 3))
            bar.set_postfix_str(f"model {min(progress.models_done + 1, progress.models_total)}/{progress.models_total}")

        try:
            outcome = services.audit(workspace, run_id, settings or AuditSettings(), device=device,
                                     on_progress=on_progress)
        except EngineError as exc:
            bar.close()
            if len(run_ids) == 1:
                _fail(exc)
            typer.echo(f"audit of {run_id} failed: {exc}", err=True)
            continue
        bar.close()
        typer.echo("\n".join(figures_lines(outcome.record)) + (" (from the store)" if outcome.cached else ""))
        breach |= outcome.breach
    return breach


def audit_command(
    run_id: str = typer.Argument(..., help="The run to audit (see `frontier results`)."),
    attack: str = typer.Option("one-run", help="one-run (canaries, one training), rmia or lira (reference models)."),
    canaries: Optional[int] = typer.Option(None, help="one-run: canaries m. Default: min(1000, a quarter of the rows)."),
    reference_models: int = typer.Option(4, help="rmia / lira: reference models trained like the target (even)."),
    white_box: bool = typer.Option(False, "--white-box", help="one-run on dp-sgd: Dirac gradient canaries."),
    confidence: float = typer.Option(0.95, help="Confidence of the epsilon lower bound and of every interval."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    store: Optional[Path] = typer.Option(None, help=STORE_HELP),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Attack a trained run: membership inference and a measured epsilon lower bound beside its epsilon.

    The audit trains extra models on the private training rows (the same technique and settings) and records its
    figures in the store, kept out of exports unless included. Exit code 3: measured leak above the guarantee.
    """
    from engine.audit.settings import AuditSettings

    settings = AuditSettings(attack=attack, reference_models=reference_models, canaries=canaries, white_box=white_box,
                             confidence=confidence)
    try:
        settings.validate()
    except EngineError as exc:
        _fail(exc)
    if _audit_runs(Workspace.at(store), [run_id], device, quiet, settings):
        typer.echo("error: measured leak above the guarantee: a bug or a broken assumption.", err=True)
        raise typer.Exit(AUDIT_BREACH_EXIT)


load_plugins(os.environ.get(PLUGINS_ENVIRONMENT_VARIABLE))
app = build_app()

if __name__ == "__main__":  # python -m engine.cli
    app()
