"""Datasets: the catalogue, loading and public-bounds preprocessing."""

from engine.data.catalogue import DatasetInfo, dataset_names, get_dataset_info
from engine.data.prepare import PreparedDataset, encode_table, load_dataset

__all__ = ["DatasetInfo", "PreparedDataset", "dataset_names", "encode_table", "get_dataset_info", "load_dataset"]
