"""Mapping files: presets, overrides, unknown keys, header matching, Google and Outlook exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync import mapping as mapping_module
from sync.errors import ConfigError
from sync.mapping import load_mapping, resolve
from sync.normalize import ingest

FIXTURES = Path(__file__).parent / "fixtures"


def test_default_and_presets_load() -> None:
    default = load_mapping()
    assert default.default_region is None
    assert "mobile phone" in default.phone_columns
    google = load_mapping("google-contacts")
    assert google.phone_columns == ("phone * - value",)
    assert "* myContacts" in google.drop_groups  # inherited from default.toml
    outlook = load_mapping("outlook")
    assert outlook.phone_columns[:4] == (
        "mobile phone",
        "primary phone",
        "business phone",
        "business phone 2",
    )


def test_cli_overrides() -> None:
    m = load_mapping("outlook", region="pk", groups=[" VIP ", "VIP", "7"])
    assert m.default_region == "PK"
    assert m.default_groups == ("VIP", "7")


@pytest.mark.parametrize("region", ["XX", "Pakistan", ""])
def test_bad_region(region: str) -> None:
    with pytest.raises(ConfigError, match="unknown --region"):
        load_mapping(region=region)


def test_unknown_keys_name_the_closest(tmp_path: Path) -> None:
    top = tmp_path / "top.toml"
    top.write_text('regoin = "PK"\n')
    with pytest.raises(ConfigError) as info:
        load_mapping(top)
    assert "unknown key 'regoin'" in str(info.value) and "did you mean 'region'" in str(info.value)
    table = tmp_path / "table.toml"
    table.write_text('[columns]\nphnoe = ["Tel"]\n')
    with pytest.raises(ConfigError, match=r"columns\.phnoe[\s\S]*did you mean 'phone'"):
        load_mapping(table)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('name_policy = "biggest"', "name_policy"),
        ('name_fallback = ["nickname"]', "name_fallback"),
        ('region = "ZZZ"', "unknown region"),
        ("require_mobile = 1", "require_mobile"),
        ("max_name_length = 2", "max_name_length"),
        ("[columns]\nphone = 3", "string or a list"),
        ("not toml ===", "not valid TOML"),
        ('extends = "nope"', "unknown mapping preset"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=fragment):
        load_mapping(path)


def test_missing_mapping_and_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_mapping(Path("/nonexistent/m.toml"))
    with pytest.raises(ConfigError, match="did you mean 'outlook'"):
        load_mapping("outlok")


def test_user_mapping_extends_default(tmp_path: Path) -> None:
    path = tmp_path / "crm.toml"
    path.write_text('extends = "default"\nregion = "GB"\n[columns]\nphone = ["Tel No"]\n')
    m = load_mapping(path)
    assert (m.default_region, m.phone_columns) == ("GB", ("Tel No",))
    assert m.name_columns == load_mapping().name_columns


def test_presets_found_in_the_installed_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "sync" / "mappings"
    installed.mkdir(parents=True)
    (installed / "default.toml").write_text('region = "DE"\n')
    monkeypatch.setattr(mapping_module, "mapping_dirs", lambda: [installed])
    assert load_mapping().default_region == "DE"


def test_header_matching_ignores_case_and_spaces() -> None:
    plan = resolve(
        load_mapping(), ["  MOBILE_PHONE ", "Home Phone", "Business Fax", "full name", "TAGS"]
    )
    assert [p.index for p in plan.phones] == [0, 1]
    assert plan.name == (3,) and plan.groups == (4,)
    assert dict(plan.roles)["Business Fax"] == "-"


def test_google_labels_layout() -> None:
    result = ingest([FIXTURES / "google_labels.csv"], load_mapping("google-contacts", region="PK"))
    by_row = {c.origin.row: c for c in result.contacts}
    assert by_row[2].phone == "+923001234567"  # the Mobile-labelled number beats Home
    assert by_row[2].groups == ("Navy",)  # "* myContacts" is not a group
    assert by_row[3].groups == ()  # "* starred" neither
    assert by_row[3].phone == "+447911123456"
    assert "2 numbers" in by_row[3].notes[0]
    assert by_row[4].phone == "+923001234569"  # Work Fax skipped; "junk ::: 0300…" → the valid one
    assert by_row[4].groups == ("Navy", "Friends")
    assert by_row[3].name == "Bob J Stone"


def test_google_legacy_layout() -> None:
    result = ingest([FIXTURES / "google_legacy.csv"], load_mapping("google-contacts", region="PK"))
    assert [(c.name, c.phone, c.groups) for c in result.contacts] == [
        ("Ali Khan", "+923001234567", ("University",)),
        ("Dana Scully", "+923001234570", ("Friends",)),  # "* Friends" → "Friends"
    ]


def test_outlook() -> None:
    result = ingest([FIXTURES / "outlook.csv"], load_mapping("outlook", region="PK"))
    assert [(c.name, c.phone, c.groups) for c in result.contacts] == [
        ("Ali Khan", "+923001234567", ("VIP",)),  # Mobile Phone before Business Phone
        ("Bob Stone", "+923001234568", ()),  # Primary Phone before Home Phone
        ("Acme Trading", "+923001234569", ("Suppliers", "VIP")),  # never the fax; company as name
    ]
