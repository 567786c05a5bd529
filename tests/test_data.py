"""Bundled datasets: catalogue, fixed splits, identifiers dropped, preprocessing from public bounds only."""

import numpy as np
import pandas as pd
import pytest

from engine.data import dataset_names, encode_table, get_dataset_info, load_dataset
from engine.errors import ConfigError, DataError

TABLES = ["adult", "credit", "german-credit", "heart", "breast-cancer"]
# Documented split sizes (catalogue.yaml `split.description`).
SPLITS = {"adult": (32561, 16281), "credit": (22500, 7500), "german-credit": (750, 250), "heart": (690, 230),
          "breast-cancer": (427, 142), "mnist": (60000, 10000)}


def test_catalogue_lists_the_required_datasets_with_their_cards():
    assert set(SPLITS) <= set(dataset_names())
    for name in dataset_names():
        card = get_dataset_info(name).summary()
        for field in ("title", "task", "label", "rows", "licence", "provenance", "sensitive_columns", "description"):
            assert card[field] not in (None, ""), (name, field)


@pytest.mark.parametrize("name", list(SPLITS))
def test_fixed_split_sizes_and_clean_arrays(name):
    data = load_dataset(name)
    assert (len(data.y_train), len(data.y_test)) == SPLITS[name]
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()
    assert data.x_train.min() >= -1.0 and data.x_train.max() <= 1.0
    assert set(np.unique(data.y_train)) == set(range(data.n_classes))
    assert load_dataset(name).fingerprint == data.fingerprint  # stable


def test_labels_follow_the_catalogue():
    heart = pd.read_parquet("datasets/heart_disease_uci_4sites.parquet")
    expected_rate = (heart["num"] > 0).mean()
    data = load_dataset("heart")
    observed = np.concatenate([data.y_train, data.y_test]).mean()
    assert observed == pytest.approx(expected_rate)
    german = load_dataset("german-credit")  # positive = bad credit (code 2), 30% of applicants
    assert np.concatenate([german.y_train, german.y_test]).mean() == pytest.approx(0.30)


def test_direct_identifiers_are_dropped():
    for name in ("credit", "heart"):
        names = load_dataset(name).feature_names
        assert not any(feature.split("=")[0].lower() == "id" for feature in names), name


def test_only_breast_cancer_uses_data_derived_bounds():
    for name in TABLES:
        derived = load_dataset(name).data_derived_bounds
        assert bool(derived) == (name == "breast-cancer"), name
    assert get_dataset_info("breast-cancer").bounds_source == "data"


def test_encoding_a_row_never_depends_on_the_other_rows():
    """Public bounds only: a row's features are the same whether it is encoded alone or with everyone else,
    so the preprocessing consumes no privacy budget."""
    info = get_dataset_info("heart")
    frame = pd.read_parquet("datasets/heart_disease_uci_4sites.parquet").drop(columns=["id"])
    everyone, _ = encode_table(frame, info.numeric, info.categorical)
    for row in (0, 5, 400, 919):
        alone, _ = encode_table(frame.iloc[[row]], info.numeric, info.categorical)
        np.testing.assert_array_equal(alone[0], everyone[row])
    # An extreme value is clipped to the declared bound instead of stretching everyone's scale.
    shifted = frame.copy()
    shifted.loc[0, "chol"] = 10_000
    encoded, _ = encode_table(shifted, info.numeric, info.categorical)
    np.testing.assert_array_equal(encoded[1:], everyone[1:])


def test_missing_values_get_indicators_and_zero_means_missing_where_declared():
    info = get_dataset_info("heart")
    frame = pd.DataFrame({column: [None] for column in [*info.numeric, *info.categorical]})
    frame["chol"] = [0]  # 0 means "not recorded" for cholesterol
    frame["age"] = [50]  # not nullable: a missing age is an error (tested below)
    encoded, names = encode_table(frame, info.numeric, info.categorical)
    row = dict(zip(names, encoded[0]))
    assert row["chol=missing"] == 1.0 and row["ca=missing"] == 1.0
    assert all(value == 0.0 for name, value in row.items() if name.startswith("cp="))
    with pytest.raises(DataError, match="'age' has missing values"):
        encode_table(frame.assign(age=[None]), info.numeric, info.categorical)


def test_subsample_is_fixed_and_changes_the_fingerprint():
    data = load_dataset("credit")
    small = data.subsample(1000)
    assert small.n_train == 1000 and small.fingerprint != data.fingerprint
    np.testing.assert_array_equal(small.x_train, data.subsample(1000).x_train)
    assert data.subsample(None) is data


def test_unknown_dataset_and_bad_catalogue_column():
    with pytest.raises(ConfigError, match="Unknown dataset 'nope'.*adult"):
        load_dataset("nope")
    with pytest.raises(DataError, match="not in the data"):
        encode_table(pd.DataFrame({"a": [1]}), {"age": {"bounds": [0, 1]}}, {})


def test_the_data_page_explains_model_inputs_and_missing_values_as_the_encoding_does():
    import re

    from engine.present.sentences import missing_values_sentence, model_inputs_sentence

    heart = load_dataset("heart")
    sentence = model_inputs_sentence(heart.info, heart.n_features)
    attributes, inputs, numeric, one_hot, _, flags = map(int, re.findall(r"\d+", sentence.replace("[-1, 1]", ""))[:6])
    assert inputs == heart.n_features == numeric + one_hot + flags and attributes == 14
    flagged = [name for name in heart.feature_names if name.endswith("=missing")]
    assert flags == len(flagged) and all(name.removesuffix("=missing") in missing_values_sentence(heart.info)
                                          for name in flagged)
