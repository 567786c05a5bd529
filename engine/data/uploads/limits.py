"""The thresholds and fixed split that inspecting, validating and registering an upload agree on."""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,39}$")  # an upload's dataset name (also its folder's)
MIN_TRAIN_PER_CLASS = 10  # training rows of each class below which a frontier means nothing
MAX_CATEGORIES = 50  # a text column with more distinct values is not one-hot encoded: drop or bin it
TEST_FRACTION, SPLIT_SEED = 0.25, 20261123  # the same fixed split as the bundled tables
MAX_ABS_VALUE = 1e15  # a number beyond this (or infinite) is refused as a feature: scaling it would overflow
