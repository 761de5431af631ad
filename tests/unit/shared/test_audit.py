from __future__ import annotations

from flowline.db.audit import field_changes


def test_only_changed_fields_are_recorded() -> None:
    changes = field_changes({"label": "a", "tags": ["x"]}, {"label": "b", "tags": ["x"], "enabled": False})

    assert changes == {"enabled": {"before": None, "after": False}, "label": {"before": "a", "after": "b"}}


def test_secret_fields_are_masked() -> None:
    changes = field_changes(
        {"authConfig": {"token": "old"}}, {"authConfig": {"token": "new"}}, secret_fields={"authConfig"}
    )

    assert changes == {"authConfig": {"before": "***", "after": "***"}}


def test_a_created_entity_has_no_before() -> None:
    assert field_changes(None, {"name": "n"}) == {"name": {"before": None, "after": "n"}}
