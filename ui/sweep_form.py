"""The Sweep page's form: the shared settings, then each chosen technique's own, all generated from their
declarations (engine.config.SweepSpec, Technique.settings). Returns plain values for services.read_spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from engine.config import DEVICES, SweepSpec
from engine.data import dataset_names
from engine.errors import EngineError
from engine.jobs.estimate import cpu_count
from engine.measure import resolve_device
from engine.runner.cluster import ClusterSettings
from engine.runner.spec import shared_settings
from engine.techniques.registry import get_technique_class, technique_names, technique_settings
from ui.settings_form import read_setting, setting_widget, settings_form

# Shared settings in the order the form shows them; dataset and techniques get their own widgets.
ROWS = (("epsilons", "clipping_norms", "seeds", "delta"),)
# Under "More settings": the training axes (comma-separated, empty = sized from the table), the per-epsilon random
# search over them, and the model and data settings.
MORE = (("learning_rate", "batch_size", "epochs", "random_trials"),
        ("hidden_units", "train_subsample", "class_weighting", "positive_share"))


@dataclass
class SweepForm:
    values: dict[str, Any]  # setting name -> value (None: not set)
    workers: int
    device: str
    errors: list[str] = field(default_factory=list)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)  # this machine, or a Ray cluster


def _shared_row(names: tuple[str, ...], errors: list[str], values: dict) -> None:
    declared = {setting.name: setting for setting in shared_settings()}
    values.update(settings_form([declared[name] for name in names], "sweep", errors, columns=len(names)))


def sweep_form(uploads_dir) -> SweepForm:
    errors: list[str] = []
    values: dict[str, Any] = {}
    names = dataset_names(uploads_dir)
    preselected = st.session_state.get("selected_dataset")
    default_dataset = preselected if preselected in names else (SweepSpec.dataset if SweepSpec.dataset in names
                                                                else names[0])
    available = technique_names()
    col_data, col_technique, col_model = st.columns([1, 2, 1])
    values["dataset"] = col_data.selectbox("Dataset", names, index=names.index(default_dataset), key="sweep_dataset",
                                           help="A bundled dataset or an upload; the Data page describes each.")
    techniques = col_technique.multiselect(
        "Techniques", available, default=[name for name in SweepSpec.techniques if name in available],
        key="sweep_techniques",
        help="\n\n".join(f"**{name}**: {get_technique_class(name).description}" for name in available))
    for name in techniques:
        col_technique.caption(f"**{name}**: {get_technique_class(name).description}")
    values["techniques"] = tuple(techniques) or None
    if not techniques:
        errors.append("Choose at least one technique.")
    model = next(setting for setting in shared_settings() if setting.name == "model")
    values["model"] = read_setting(model, setting_widget(model, "sweep_model", col_model), errors)
    for row in ROWS:
        _shared_row(row, errors, values)

    cuda_visible = resolve_device("auto") == "cuda"
    col_accountant, col_workers, col_device = st.columns(3)
    accountant = next(setting for setting in shared_settings() if setting.name == "accountant")
    values["accountant"] = read_setting(accountant, setting_widget(accountant, "sweep_accountant", col_accountant),
                                        errors)
    workers = col_workers.number_input("Workers", min_value=1, max_value=max(1, cpu_count()), value=1,
                                       key="sweep_workers",
                                       help="Runs trained at once in separate processes on the CPU (ignored on CUDA).")
    device = col_device.selectbox("Device", list(DEVICES), key="sweep_device",
                                  help="auto: CUDA when a GPU is visible, else the CPU.")
    col_device.caption("A CUDA GPU is visible: auto trains on it." if cuda_visible
                       else "No CUDA GPU is visible here: auto trains on the CPU.")
    if device == "cuda" and not cuda_visible:
        errors.append("No CUDA GPU is visible: choose device auto or cpu.")
    with st.expander("More settings", key="sweep_more"):
        for row in MORE:
            _shared_row(row, errors, values)
    values.update(technique_section(techniques, errors))
    cluster = cluster_section(errors)
    return SweepForm(values=values, workers=int(workers), device=device, errors=errors, cluster=cluster)


def cluster_section(errors: list[str]) -> ClusterSettings:
    """Where the sweep trains: this machine, or a Ray cluster (its address, each task's CPUs and GPUs)."""
    backend, *ray_settings = ClusterSettings.declared()
    with st.expander("Where it runs", key="sweep_cluster"):
        chosen = read_setting(backend, setting_widget(backend, "cluster_backend"), errors)
        values = settings_form(ray_settings, "cluster", errors, disabled=() if chosen == "ray" else
                               [declared.name for declared in ray_settings])
    try:
        return ClusterSettings.from_values({"backend": chosen, **values})
    except EngineError as exc:
        errors.append(str(exc))
        return ClusterSettings()


def technique_section(techniques: list[str], errors: list[str]) -> dict[str, Any]:
    """The chosen techniques' own settings, one expander per settings group (federated, encrypted inference)."""
    chosen = technique_settings(techniques) if techniques else {}
    groups: dict[str, list] = {}
    for declared in chosen.values():
        groups.setdefault(declared.group or "technique", []).append(declared)
    values: dict[str, Any] = {}
    for group, declared in groups.items():
        users = [name for name in techniques if any(s.name in {d.name for d in declared}
                                                   for s in get_technique_class(name).settings.declared())]
        key = f"sweep_{group.replace(' ', '_')}"
        with st.expander(f"{group.capitalize()} settings ({', '.join(users)})", expanded=True, key=key):
            values.update(settings_form(declared, "sweep", errors))
    return {name: value for name, value in values.items() if value is not None}
