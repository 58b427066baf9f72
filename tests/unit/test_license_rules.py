"""License resolution of one source, and the dataset card's license header and section (no Spark)."""

from __future__ import annotations

import pytest

from instructlake.config import load_config
from instructlake.errors import ConfigError
from instructlake.export.card import card_license, license_section
from instructlake.licenses import UNKNOWN, source_license


def test_recorded_wins_then_exact_name_then_first_matching_pattern():
    mapping = {"alpaca_*": "CC-BY-NC-4.0", "alpaca_en_demo": "apache-2.0", "*": "mit"}
    assert source_license("alpaca_en_demo", {}, mapping) == "apache-2.0"  # an exact name before patterns
    assert source_license("alpaca_gpt4", {}, mapping) == "cc-by-nc-4.0"  # the first matching pattern
    assert source_license("oasst", {}, mapping) == "mit"
    assert source_license("alpaca_gpt4", {"alpaca_gpt4": "apache-2.0"}, mapping) == "apache-2.0"
    assert source_license("oasst", {}, {}) == UNKNOWN


def test_card_names_one_license_or_other():
    assert card_license({"rows_per_license": {"apache-2.0": 5}}) == "apache-2.0"
    assert card_license({"rows_per_license": {"apache-2.0": 5, "mit": 1}}) == "other"
    assert card_license({"rows_per_license": {"apache-2.0+cc-by-nc-4.0": 2}}) == "other"
    assert card_license({}) == "other"
    text = "\n".join(license_section({"asked": {"licenses": ["mit"], "commercial_only": True}, "dropped": 4,
                                      "rows_per_license": {"mit": 3}, "rows_per_model_terms": {"none": 3}}))
    assert "| mit | 3 |" in text and "licenses among `mit` and commercial use allowed" in text
    assert "4 were left out" in text and "model terms" not in text.split("Rows per license")[1]


def test_export_license_settings_are_normalized_and_checked():
    cfg = load_config("local", ["export.licenses=[' Apache-2.0', MIT]", "platform.licenses.sources={a: X}"])
    assert cfg.export.licenses == ("apache-2.0", "mit") and cfg.platform.licenses.sources == {"a": "X"}
    with pytest.raises(ConfigError, match="platform.licenses.sources"):
        load_config("local", ["platform.licenses.sources={a: ''}"])
