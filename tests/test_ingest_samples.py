"""sample_data/ end to end, and the `check` command over it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sync.cli import cli
from sync.mapping import load_mapping
from sync.normalize import ingest

SAMPLES = Path(__file__).parent.parent / "sample_data"
FILES = [SAMPLES / n for n in ("crm_export.csv", "europe_contacts.csv", "contacts.xlsx")]


def test_sample_data_counts_and_accounting() -> None:
    result = ingest(FILES, load_mapping(region="PK"))
    assert result.rows_read == len(result.contacts) + len(result.issues)
    assert (
        result.rows_read,
        len(result.contacts),
        len(result.invalid),
        len(result.duplicates),
    ) == (
        32,
        19,
        9,
        4,
    )
    phones = {c.phone: c for c in result.contacts}
    assert phones["+923012345678"].groups == ("VIP Clients", "Lahore", "Newsletter")
    assert phones["+923001112244"].raw_phone == "3001112244"  # Excel dropped the leading 0
    assert "+923335556677" in phones  # seeded as an opt-out by the demo
    assert [(s.encoding, s.delimiter) for s in result.sources[:2]] == [
        ("utf-8", ","),
        ("cp1252", ";"),
    ]


def test_check_command() -> None:
    res = CliRunner().invoke(cli, ["check", *map(str, FILES), "--region", "PK", "--group", "Demo"])
    assert res.exit_code == 0, res.output
    for text in ("crm_export.csv", "cp1252", "phone 1", "rows read", "+923012345678", "scientific"):
        assert text in res.output


def test_check_bad_region_exits_2() -> None:
    res = CliRunner().invoke(cli, ["check", str(FILES[0]), "--region", "XX"])
    assert res.exit_code == 2
    assert "unknown --region 'XX'" in res.output
