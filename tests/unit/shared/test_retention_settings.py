"""Retention settings: durations of one unit, checked when the settings are read."""

from __future__ import annotations

import pytest
from flowline.settings import ConfigurationError, load_settings, retention_seconds, retention_text


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000)])
def test_a_retention_is_a_whole_number_of_one_unit(text: str, seconds: int) -> None:
    assert retention_seconds(text) == seconds
    assert retention_text(seconds) == text


def test_a_retention_is_shown_in_the_largest_unit_that_divides_it() -> None:
    assert [retention_text(seconds) for seconds in (60, 61, 7200, 86400 * 365)] == ["1m", "61s", "2h", "365d"]


@pytest.mark.parametrize("text", ["forever", "-1d", "0s", "1.5h", "30", "1h30m", "1w", "9999999d"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a retention"):
        retention_seconds(text)


def test_a_bad_retention_setting_names_its_variable() -> None:
    assert load_settings({}).execution_retention == "30d"
    with pytest.raises(ConfigurationError, match="FLOWLINE_EXECUTION_RETENTION='forever'"):
        load_settings({"FLOWLINE_EXECUTION_RETENTION": "forever"})
    with pytest.raises(ConfigurationError, match="FLOWLINE_AUDIT_RETENTION='0d'"):
        load_settings({"FLOWLINE_AUDIT_RETENTION": "0d"})
