"""Datasets: the catalogue (bundled and uploaded), loading, public-bounds preprocessing, CSV uploads."""

from engine.data.catalogue import DatasetInfo, catalogue_signature, dataset_names, get_dataset_info, user_datasets_dir
from engine.data.prepare import PreparedDataset, clear_dataset_cache, encode_table, load_dataset

__all__ = ["DatasetInfo", "PreparedDataset", "catalogue_signature", "clear_dataset_cache", "dataset_names",
           "encode_table", "get_dataset_info", "load_dataset", "user_datasets_dir"]
