"""The planner: outcomes per phone, guards, and properties over random remote/desired sets."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.errors import ConfigError, SafetyError
from sync.groups import GroupIndex
from sync.models import DesiredContact, OptOut, Origin, RemoteContact, RemoteGroup
from sync.plan import (
    ENTRY_FIELDS,
    SAVED_FIELDS,
    Entry,
    Plan,
    _match,
    check_guards,
    make_plan,
)
from sync.settings import Limit
from sync.table import Table

GROUPS = [
    RemoteGroup(1, "Customers"),
    RemoteGroup(2, "Staff"),
    RemoteGroup(3, "Leads"),
    RemoteGroup(4, "contact-sync"),  # the fallback of rows without groups
]


def want(
    phone: str, name: str = "Some Name", groups: tuple[str, ...] = ("Customers",), row: int = 2
) -> DesiredContact:
    return DesiredContact(phone, name, groups, Origin("a.csv", None, row), raw_phone=phone)


def have(
    cid: int, phone: str, name: str = "Some Name", groups: tuple[int, ...] = (1,)
) -> RemoteContact:
    return RemoteContact(cid, phone, name, groups)


def _row_entry(
    d: DesiredContact,
    tokens: tuple[str, ...],
    r: RemoteContact | None,
    opted_out: bool,
    index: GroupIndex,
    replace_changed: bool,
) -> Entry:
    """The entry of one source row, decided on its own (the reference for the column-wise
    planner)."""
    action, reason, rid, old_name, old_groups = _match(
        d, tokens, r, opted_out, index, replace_changed
    )
    return Entry(
        action, d.phone, d.name, tokens, reason, rid, old_name, old_groups, d.origin, d.raw_phone
    )


def as_table(desired: list[DesiredContact]) -> Table[DesiredContact]:
    """The contacts held column-wise, as an ingest snapshot gives them."""
    names = [f.name for f in dataclasses.fields(DesiredContact)]
    cols = {f: [getattr(d, f) for d in desired] for f in names}
    origins = cols.pop("origin")
    nested = {f: [getattr(o, f) for o in origins] for f in ("file", "sheet", "row")}
    table: Table[DesiredContact] = Table(DesiredContact, {**cols, "origin": Table(Origin, nested)})
    assert list(table) == desired
    return table


def actions(plan: Plan) -> dict[str, str]:
    return {e.phone: e.action for e in plan.entries}


def test_each_outcome_once() -> None:
    desired = [
        want("+923001110001"),  # create
        want("+923001110002"),  # unchanged
        want("+923001110003", name="New Name"),  # drift (name)
        want("+923001110004", groups=("Staff",)),  # drift (groups)
        want("+923001110005"),  # opted out, not on remote
    ]
    remote = [
        have(10, "+923001110002"),
        have(11, "+923001110003", name="Old Name"),
        have(12, "+923001110004"),
        have(13, "+923001110009"),  # remote only, in scope of Customers
        have(14, "+923001110010", groups=(2,)),  # remote only, outside the scope
    ]
    optouts = [OptOut(1, "+923001110005", 0)]
    plan = make_plan(desired, remote, GROUPS, optouts, mode="mirror", scope_groups=["Customers"])
    assert actions(plan) == {
        "+923001110001": "create",
        "+923001110002": "unchanged",
        "+923001110003": "drift",
        "+923001110004": "drift",
        "+923001110005": "skip_optout",
        "+923001110009": "delete",
        "+923001110010": "keep",
    }
    assert plan.in_scope == 4
    drift = {e.phone: e for e in plan.of("drift")}
    assert "Old Name" in drift["+923001110003"].reason
    assert drift["+923001110003"].old_name == "Old Name"


def test_add_mode_never_deletes() -> None:
    plan = make_plan([want("+923001110001")], [have(1, "+923001110009")], GROUPS, [])
    assert actions(plan) == {"+923001110001": "create", "+923001110009": "keep"}


def test_replace_changed_but_never_an_opted_out_phone() -> None:
    desired = [want("+923001110003", name="New Name"), want("+923001110004", name="New Name")]
    remote = [have(1, "+923001110003"), have(2, "+923001110004")]
    optouts = [OptOut(1, "+923001110004", 0)]
    plan = make_plan(desired, remote, GROUPS, optouts, replace_changed=True)
    assert actions(plan) == {"+923001110003": "replace", "+923001110004": "drift"}
    assert "opted out" in plan.of("drift")[0].reason


def test_missing_groups_are_planned_and_group_ids_resolve() -> None:
    plan = make_plan([want("+923001110001", groups=("2", "Newcomers"))], [], GROUPS, [])
    assert plan.group_creates == ("Newcomers",)
    plan = make_plan([want("+923001110001", groups=())], [], GROUPS, [], fallback_group="Default1")
    assert plan.group_creates == ("Default1",)


def test_ambiguous_group_name_names_the_ids() -> None:
    groups = [*GROUPS, RemoteGroup(7, "Customers")]
    with pytest.raises(ConfigError, match=r"ids 1, 7"):
        make_plan([want("+923001110001")], [], groups, [])


def test_unknown_scope_group_is_an_error_not_an_empty_scope() -> None:
    with pytest.raises(ConfigError, match="Custmers"):
        make_plan([want("+923001110001")], [], GROUPS, [], mode="mirror", scope_groups=["Custmers"])


def test_short_unknown_group_cannot_be_created() -> None:
    with pytest.raises(
        ConfigError, match=r"need at least 4 characters \(used by 1 row\(s\), first at a.csv:2\)"
    ):
        make_plan([want("+923001110001", groups=("VIP",))], [], GROUPS, [])


def test_remote_names_compare_after_unescaping_upstream() -> None:
    # The client unescapes; the planner compares plain text.
    plan = make_plan(
        [want("+923001110001", name="Tom & Jerry")],
        [have(1, "+923001110001", name="Tom & Jerry")],
        GROUPS,
        [],
    )
    assert actions(plan) == {"+923001110001": "unchanged"}


def test_saved_plan_round_trips() -> None:
    plan = make_plan(
        [want("+923001110001"), want("+923001110002", name="Other Name")],
        [have(1, "+923001110002"), have(2, "+923001110003")],
        GROUPS,
        [],
        mode="mirror",
        replace_changed=True,
    )
    again = Plan.from_json(orjson.loads(orjson.dumps(plan.to_json())))
    assert again.writes == plan.writes
    assert again.fingerprint == plan.fingerprint


# -- guards -------------------------------------------------------------------------------


def guard(
    plan: Plan,
    *,
    rows: int = 1,
    valid: int = 1,
    invalid: int = 0,
    max_delete: str = "10%",
    max_invalid: str = "50%",
) -> None:
    check_guards(
        plan,
        rows_read=rows,
        valid=valid,
        invalid=invalid,
        max_delete=Limit.parse(max_delete, option="--max-delete"),
        max_invalid=Limit.parse(max_invalid, option="--max-invalid"),
    )


def test_guard_mirror_with_no_valid_rows() -> None:
    plan = make_plan([], [have(1, "+923001110001")], GROUPS, [], mode="mirror")
    with pytest.raises(SafetyError, match="no valid rows"):
        guard(plan, rows=0, valid=0, max_delete="100%", max_invalid="100%")


def test_guard_max_delete_is_all_or_nothing() -> None:
    remote = [have(i, f"+92300111{i:04d}") for i in range(1, 21)]
    plan = make_plan([want("+923001110001")], remote, GROUPS, [], mode="mirror")
    assert len(plan.of("delete")) == 19
    with pytest.raises(SafetyError, match="19 deletions"):
        guard(plan, max_delete="10%")
    guard(plan, max_delete="19")


def test_guard_max_invalid() -> None:
    plan = make_plan([want("+923001110001")], [], GROUPS, [])
    with pytest.raises(SafetyError, match="3 of 4 rows are invalid"):
        guard(plan, rows=4, invalid=3)


@pytest.mark.parametrize("text", ["ten", "-5", "150%", "2.5", ""])
def test_limit_rejects_bad_values(text: str) -> None:
    with pytest.raises(ConfigError, match="--max-delete"):
        Limit.parse(text, option="--max-delete")


def test_limit_values() -> None:
    assert Limit.parse("10%", option="x").allowed(50) == 5
    assert Limit.parse(" 25 ", option="x").allowed(3) == 25


# -- properties -----------------------------------------------------------------------------

phones = st.integers(min_value=0, max_value=40).map(lambda i: f"+9230011{i:05d}")
names = st.sampled_from(["Alice Khan", "Bilal Ahmed", "Chen Wei", "Dana Scully"])
group_sets = st.sets(st.sampled_from([1, 2, 3]), min_size=1, max_size=3)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[DesiredContact], list[RemoteContact], list[OptOut]]:
    desired = {p: (draw(names), draw(group_sets)) for p in draw(st.sets(phones, max_size=15))}
    remote = {p: (draw(names), draw(group_sets)) for p in draw(st.sets(phones, max_size=15))}
    optouts = draw(st.sets(phones, max_size=5))
    by_id = {g.id: g.name for g in GROUPS}
    bare = draw(st.booleans())  # sources without a group column: every row takes the fallback
    d = [
        want(p, n, () if bare else tuple(by_id[g] for g in sorted(gs)))
        for p, (n, gs) in desired.items()
    ]
    r = [have(i, p, n, tuple(sorted(gs))) for i, (p, (n, gs)) in enumerate(remote.items(), 1)]
    return d, r, [OptOut(i, p, 0) for i, p in enumerate(optouts, 1)]


def model_apply(plan: Plan, remote: list[RemoteContact]) -> dict[str, tuple[str, frozenset[str]]]:
    """Apply the plan to a model of the remote: phone → (name, group names)."""
    by_id = {g.id: g.name for g in GROUPS}
    state = {c.phone: (c.name, frozenset(by_id[g] for g in c.groups)) for c in remote}
    for e in plan.writes:
        if e.action in ("delete", "replace"):
            del state[e.phone]
        if e.action in ("create", "replace"):
            assert e.phone not in state
            state[e.phone] = (e.name, frozenset(e.groups))
    return state


@settings(max_examples=300, deadline=None)
@given(
    worlds(),
    st.booleans(),
    st.sampled_from([(), ("Customers",), ("Staff", "Leads")]),
    st.booleans(),
)
def test_properties(
    world: tuple[list[DesiredContact], list[RemoteContact], list[OptOut]],
    mirror: bool,
    scope: tuple[str, ...],
    replace_changed: bool,
) -> None:
    desired, remote, optouts = world
    mode = "mirror" if mirror else "add"
    scope = scope if mirror else ()

    def plan_for(remote: list[RemoteContact], wanted: Sequence[DesiredContact] = desired) -> Plan:
        return make_plan(
            wanted,
            remote,
            GROUPS,
            optouts,
            mode=mode,
            scope_groups=scope,
            replace_changed=replace_changed,
        )

    plan = plan_for(remote)
    assert plan_for(remote) == plan, "planning twice gives the same plan"
    from_columns = plan_for(remote, as_table(desired))
    assert from_columns == plan, "contacts held column-wise (a snapshot) plan the same"
    assert list(from_columns.entries) == list(plan.entries)
    # the column-wise fast path for new contacts: the same entries, in the sources' order, as
    # deciding row by row
    index = GroupIndex.build(GROUPS)
    first_remote = {c.phone: c for c in sorted(remote, key=lambda c: c.id)[::-1]}
    opted_phones = {o.phone for o in optouts}
    row_by_row = [
        _row_entry(
            d,
            d.groups or ("contact-sync",),
            first_remote.get(d.phone),
            d.phone in opted_phones,
            index,
            replace_changed,
        )
        for d in desired
    ]
    assert list(plan.entries[: len(desired)]) == row_by_row
    assert plan.counts == Counter(e.action for e in plan.entries), "counted without a pass"
    after = model_apply(plan, remote)
    opted = {o.phone for o in optouts}
    remote_phones = {c.phone for c in remote}
    wanted = {d.phone: (d.name, frozenset(d.groups or ("contact-sync",))) for d in desired}
    # opted-out phones are never created
    created = {e.phone for e in plan.writes if e.action == "create"}
    assert not created & opted
    assert not {e.phone for e in plan.writes if e.action == "replace"} & opted
    scope_ids = {g.id for g in GROUPS if g.name in scope}
    for c in remote:
        in_scope = not scope_ids or bool(scope_ids & set(c.groups))
        if c.phone not in wanted and (not mirror or not in_scope):
            assert c.phone in after, "nothing outside the plan's scope is deleted"
    reachable = {p for p in wanted if p not in opted or p in remote_phones}
    if mirror:
        in_scope_after = {
            p
            for p in after
            if not scope_ids
            or p in wanted
            or scope_ids & {g.id for g in GROUPS if g.name in after[p][1]}
        }
        assert reachable <= set(after)
        assert in_scope_after - set(wanted) == set(), "mirror: no in-scope extras remain"
    else:
        assert set(after) >= remote_phones | reachable
    if replace_changed:
        for p in reachable:
            if p not in opted:
                assert after[p] == wanted[p]
    # a second plan over the resulting state has nothing to create
    next_remote = [
        have(i, p, n, tuple(sorted(g.id for g in GROUPS if g.name in gs)))
        for i, (p, (n, gs)) in enumerate(sorted(after.items()), 100)
    ]
    assert not plan_for(next_remote).writes


def test_saved_plan_file_streams_and_round_trips(tmp_path: Path) -> None:
    from sync.engine import _Run, _write_plan
    from sync.settings import Secret, Settings

    desired = [want(f"+9230011{i:05d}", row=i + 2) for i in range(25_000)]  # 3 chunks
    plan = make_plan(desired, [have(1, "+923009999999")], GROUPS, [], mode="mirror")
    run = _Run("plan", Settings(report_dir=tmp_path, secret=Secret("s3cret-value")))
    run.plan = plan
    text = _write_plan(run).read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["run_id"] == run.run_id and "s3cret-value" not in json.dumps(doc)
    again = Plan.from_json(doc["plan"])
    assert again.writes == plan.writes and len(again.writes) == 25_001
    # a column per line, in the order the file names, a value per write, or one value for all
    assert doc["plan"]["format"] == 5 and doc["plan"]["count"] == 25_001
    assert doc["plan"]["fields"] == list(SAVED_FIELDS)
    assert doc["plan"]["files"] == ["a.csv"]
    saved = doc["plan"]["columns"]
    assert list(saved) == list(SAVED_FIELDS)
    repeated = {f for f, v in saved.items() if isinstance(v, dict)}
    assert repeated == {"name", "old_name", "old_groups", "sheet"}, "one value for every write"
    assert saved["old_groups"] == {"repeat": []} and saved["sheet"] == {"repeat": None}
    columns = expanded(doc["plan"])
    assert {len(v) for v in columns.values()} == {25_001}
    lines = text.splitlines()
    lines = lines[lines.index('"columns": {') + 1 : -1]
    assert [json.loads("{" + line.rstrip(",") + "}").popitem()[0] for line in lines] == list(
        SAVED_FIELDS
    )
    first = {f: columns[f][0] for f in SAVED_FIELDS}
    assert first["action"] == "create" and first["phone"] == "+923001100000"
    assert (first["file"], first["sheet"], first["row"]) == (0, None, 2)
    delete = {f: columns[f][-1] for f in SAVED_FIELDS}
    assert delete["action"] == "delete"
    assert (delete["file"], delete["sheet"], delete["row"]) == (None, None, None)


def test_saved_plan_with_awkward_text_round_trips(tmp_path: Path) -> None:
    from sync.engine import _Run, _write_plan
    from sync.settings import Secret, Settings

    names = ['a],["b', '"],["', "line\nbreak", 'Müller, "Jr" ][']
    desired = [
        want(f"+9230011{i:05d}", name=n, groups=(f"Group {n}",), row=i + 2)
        for i, n in enumerate(names * 3)
    ]
    # several files and sheets, named awkwardly too: each keeps its own origin
    desired = [
        dataclasses.replace(d, origin=Origin(f"{names[i % 3]}.xlsx", names[i % 2], i + 2))
        if i % 4
        else d
        for i, d in enumerate(desired)
    ]
    plan = make_plan(desired, [have(1, "+923009999999")], GROUPS, [], mode="mirror")
    run = _Run("plan", Settings(report_dir=tmp_path, secret=Secret("s3cret-value")))
    run.plan = plan
    again = Plan.from_json(json.loads(_write_plan(run).read_text(encoding="utf-8"))["plan"])
    assert again.writes == plan.writes


def expanded(saved: dict[str, Any]) -> dict[str, list[Any]]:
    """A format 5 plan's columns with each `{"repeat": value}` written out (as format 4 had
    them)."""
    count = saved["count"]
    return {
        f: [v["repeat"]] * count if isinstance(v, dict) else v for f, v in saved["columns"].items()
    }


def test_a_column_of_one_value_is_saved_once_and_read_back() -> None:
    desired = [want(f"+92300111{i:04d}", row=5) for i in range(50)]
    desired.append(want("+923001119999", row=5, groups=("Staff",)))
    remote = [have(1, "+923001110000"), have(2, "+923009999999")]
    plan = make_plan(desired, remote, GROUPS, [], mode="mirror")
    doc = orjson.loads(orjson.dumps(plan.to_json()))
    saved = doc["columns"]
    assert doc["count"] == len(plan.writes) == 51  # 50 creates and one delete (one unchanged)
    assert saved["row"] == [5] * 50 + [None]
    assert Plan.from_json(doc).writes == plan.writes
    only_creates = make_plan(desired[1:], remote[:1], GROUPS, [])
    doc = orjson.loads(orjson.dumps(only_creates.to_json()))
    assert doc["columns"]["action"] == {"repeat": "create"}
    assert doc["columns"]["file"] == {"repeat": 0} and doc["files"] == ["a.csv"]
    assert doc["columns"]["row"] == {"repeat": 5}
    assert Plan.from_json(doc).writes == only_creates.writes
    empty = orjson.loads(orjson.dumps(make_plan([], [], GROUPS, []).to_json()))
    assert empty["count"] == 0 and Plan.from_json(empty).writes == []
    for bad in ({"repeat": 1, "more": 2}, {"again": 1}, [5] * 3):
        with pytest.raises(ValueError, match="column 'row'"):
            Plan.from_json({**doc, "columns": {**doc["columns"], "row": bad}})


def test_a_format_4_plan_still_loads() -> None:
    """Format 4 (every column an array, no count) as the previous version wrote it."""
    desired = [want("+923001110001"), want("+923001110002", row=9)]
    plan = make_plan(desired, [have(2, "+923001110003")], GROUPS, [], mode="mirror")
    v5 = orjson.loads(orjson.dumps(plan.to_json()))
    v4 = {**v5, "format": 4, "columns": expanded(v5)}
    del v4["count"]
    assert all(isinstance(v, list) for v in v4["columns"].values())
    assert Plan.from_json(v4).writes == plan.writes
    with pytest.raises(ValueError, match="neither an array nor a repeat"):
        Plan.from_json({**v4, "columns": v5["columns"]})  # no count: a repeat means nothing


def test_a_format_1_plan_still_loads_and_an_unknown_format_is_refused() -> None:
    plan = make_plan([want("+923001110001")], [have(2, "+923001110003")], GROUPS, [])
    v1 = {**orjson.loads(orjson.dumps(plan.to_json())), "format": 1}
    v1["entries"] = [orjson.loads(orjson.dumps(e)) for e in plan.writes]  # objects, as v1 had
    del v1["fields"]
    assert Plan.from_json(v1).writes == plan.writes
    with pytest.raises(ConfigError, match="plan format 9"):
        Plan.from_json({**v1, "format": 9})
    v5 = orjson.loads(orjson.dumps(plan.to_json()))
    with pytest.raises(ConfigError, match="plan format 5"):
        Plan.from_json({**v5, "fields": ["phone", "action"]})  # not the order this version reads


def test_a_format_3_plan_still_loads() -> None:
    """Format 3 (an array per entry in SAVED_FIELDS order) as the previous version wrote it."""
    desired = [want("+923001110001"), want("+923001110002", row=9)]
    plan = make_plan(desired, [have(2, "+923001110003")], GROUPS, [], mode="mirror")
    v5 = orjson.loads(orjson.dumps(plan.to_json()))
    columns = expanded(v5)
    del v5["columns"], v5["count"]
    rows = [list(r) for r in zip(*(columns[f] for f in SAVED_FIELDS), strict=True)]
    v3 = {**v5, "format": 3, "entries": rows}
    assert rows[1][SAVED_FIELDS.index("row")] == 9 and len(rows) == 3
    assert Plan.from_json(v3).writes == plan.writes
    assert Plan.from_json({**v3, "entries": []}).writes == []


def test_a_format_2_plan_still_loads() -> None:
    """Format 2 (entries as arrays, each origin an object) as the previous version wrote it."""
    desired = [want("+923001110001"), want("+923001110002", row=9)]
    plan = make_plan(desired, [have(2, "+923001110003")], GROUPS, [], mode="mirror")
    v2 = {
        **orjson.loads(orjson.dumps(plan.to_json())),
        "format": 2,
        "fields": list(ENTRY_FIELDS),
        "entries": orjson.loads(orjson.dumps([attrgetter(*ENTRY_FIELDS)(e) for e in plan.writes])),
    }
    del v2["files"]
    origin = v2["entries"][1][ENTRY_FIELDS.index("origin")]
    assert origin == {"file": "a.csv", "sheet": None, "row": 9}
    assert Plan.from_json(v2).writes == plan.writes
    with pytest.raises(ConfigError, match="plan format 2"):
        Plan.from_json({**v2, "fields": list(SAVED_FIELDS)})
