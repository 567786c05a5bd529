"""Datasets: the catalogue (bundled and uploaded), loading, public-bounds preprocessing, CSV uploads (uploads/).

The uploads folder is passed in (`uploads_dir`), never read from the environment: this package imports nothing
from the rest of the engine but engine.errors.
"""

from engine.data.catalogue import DatasetInfo, catalogue_signature, dataset_names, get_dataset_info
from engine.data.prepare import PreparedDataset, clear_dataset_cache, encode_table, load_dataset

__all__ = ["DatasetInfo", "PreparedDataset", "catalogue_signature", "clear_dataset_cache", "dataset_names",
           "encode_table", "get_dataset_info", "load_dataset"]
