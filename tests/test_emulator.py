"""The emulator, rule by rule against the API page; then faults, state, loopback and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator_helpers import call, request

from sync.emulator import (
    PERMISSIONS,
    AnswerLost,
    Chaos,
    EmulatorApp,
    Faults,
    StateError,
    Store,
    create_app,
    dispatch,
    run_in_thread,
)

ENDPOINTS = [p.replace("_", "/") for p in PERMISSIONS]
PK = "+923001234567"


@pytest.fixture
def store() -> Store:
    return Store("PK")


@pytest.fixture
def app(store: Store) -> EmulatorApp:
    return create_app(store)


def fail(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "message": message, "data": False}


def ok(message: str, data: Any = False) -> dict[str, Any]:
    return {"status": 200, "message": message, "data": data}


# -- checks every endpoint makes, in the table's order --------------------------------------


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, "no/such"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_missing_or_empty_secret_is_invalid_parameters(
    app: EmulatorApp, endpoint: str, method: str
) -> None:
    for params in ({}, {"secret": ""}, {"secret": "  "}):
        response = request(app, method, endpoint, params=params)
        assert response.status_code == 200
        assert response.json() == fail(400, "Invalid Parameters!")


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, "no/such"])
def test_unknown_secret_is_401_before_the_endpoint_is_checked(
    app: EmulatorApp, endpoint: str
) -> None:
    assert call(app, endpoint, secret="nope") == fail(401, "Invalid API secret supplied!")


@pytest.mark.parametrize("endpoint", ["no/such", "", "get/contact", "create/contacts"])
def test_unknown_endpoint(app: EmulatorApp, endpoint: str) -> None:
    assert call(app, endpoint) == fail(400, "Invalid API Endpoint!")


@pytest.mark.parametrize("permission", PERMISSIONS)
def test_key_without_the_endpoint_permission_is_403_before_params(
    app: EmulatorApp, store: Store, permission: str
) -> None:
    limited = store.add_key("limited", set(PERMISSIONS) - {permission})
    endpoint = permission.replace("_", "/")
    assert call(app, endpoint, secret=limited) == fail(
        403, "This API key doesn't have permission to use this endpoint!"
    )
    assert call(app, "no/such", secret=limited) == fail(400, "Invalid API Endpoint!")


def test_keys_of_one_account_share_its_data(app: EmulatorApp, store: Store) -> None:
    reader = store.add_key("reader", ["get_groups"])
    store.add_group("Friends")
    assert call(app, "get/groups", secret=reader)["data"] == [{"id": 1, "name": "Friends"}]
    assert call(app, "create/group", "POST", secret=reader, name="More")["status"] == 403


def test_success_messages_and_data(app: EmulatorApp, store: Store) -> None:
    gid = store.add_group("Friends")
    oid = store.add_optout("+639694967617", created=1645755138)
    assert call(app, "create/group", "POST", name="Family") == ok("Contact group has been created!")
    created = call(app, "create/contact", "POST", phone=PK, name="Shane", groups=str(gid))
    assert created == ok("Contact has been created!")
    assert call(app, "get/contacts") == ok(
        "Saved Contacts", [{"id": 1, "groups": ["1"], "phone": PK, "name": "Shane"}]
    )
    groups = [{"id": 2, "name": "Family"}, {"id": 1, "name": "Friends"}]
    assert call(app, "get/groups") == ok("Contact Groups", groups)
    optouts = [{"id": oid, "phone": "+639694967617", "created": 1645755138}]
    assert call(app, "get/unsubscribed") == ok("Unsubscribed Contacts", optouts)
    assert call(app, "delete/contact", id=1) == ok("Contact has been deleted!")
    assert call(app, "delete/group", id=1) == ok("Contact group has been deleted!")
    assert call(app, "delete/unsubscribed", id=oid) == ok("Unsubscribed contact has been deleted!")
    assert store.contacts() == [] and store.optouts() == []
    assert store.groups() == [{"id": 2, "name": "Family"}]


# -- create/contact: each check, and its place in the order ------------------------------------


def make_store(*, package: bool = True, quota: int | None = None, country: str = "PK") -> Store:
    store = Store(country, package=package, quota=quota)
    store.add_group("Friends")  # id 1
    store.add_contact("+923009999999", "Existing")
    return store


VALID = {"name": "Shane", "phone": PK, "groups": "1"}
CASES = [
    # (store options, params overriding VALID, expected message)
    ({}, {"name": None}, "Invalid Parameters!"),
    ({}, {"phone": None}, "Invalid Parameters!"),
    ({}, {"groups": None}, "Invalid Parameters!"),
    ({}, {"name": " \t "}, "Invalid Parameters!"),
    ({"package": False}, {"groups": ""}, "Invalid Parameters!"),
    ({"package": False, "quota": 1}, {}, "Account is not subscribed to any premium package!"),
    ({"quota": 1}, {"name": "Ab"}, "You have reached the maximum allowed contacts!"),
    ({"quota": 0}, {}, "You have reached the maximum allowed contacts!"),
    ({}, {"name": "Tom", "phone": "12"}, "Contact name is too short!"),
    ({}, {"name": "  Tom  "}, "Contact name is too short!"),
    ({}, {"phone": "12345", "groups": "99"}, "Invalid phone number!"),
    ({}, {"phone": "not a phone"}, "Invalid phone number!"),
    ({}, {"phone": "+44 7400 123456", "groups": "99"}, "Group #99 is invalid!"),
    ({}, {"groups": "1,x"}, "Group #x is invalid!"),
    ({}, {"groups": "1,,1"}, "Group # is invalid!"),
    ({}, {"phone": "+923009999999", "groups": "7"}, "Group #7 is invalid!"),
    ({}, {"phone": "0300 9999999"}, "Phone number already exist in your contact book!"),
    ({}, {"phone": "+92 300 999 9999"}, "Phone number already exist in your contact book!"),
    ({"country": "GB"}, {"phone": "03009999999"}, "Contact has been created!"),
]


@pytest.mark.parametrize(("options", "override", "message"), CASES)
def test_create_contact_checks_in_order(
    options: dict[str, Any], override: dict[str, str | None], message: str
) -> None:
    app = create_app(make_store(**options))
    params = {k: v for k, v in {**VALID, **override}.items() if v is not None}
    body = call(app, "create/contact", "POST", **params)
    expected = ok(message) if message == "Contact has been created!" else fail(400, message)
    assert body == expected
    assert len(app.store.contacts()) == 1 + (body["status"] == 200)


@pytest.mark.parametrize(
    ("name", "created"),
    [
        ("Zoë", True),
        ("Bob", False),
        ("a&b", True),
        ("ab'", True),
        ("日本", True),
        ("  Ab  ", False),
    ],
)
def test_name_length_is_in_bytes_after_trim_and_escape(
    app: EmulatorApp, store: Store, name: str, created: bool
) -> None:
    store.add_group("Friends")
    body = call(app, "create/contact", "POST", name=name, phone=PK, groups="1")
    assert (body["status"] == 200) is created


def test_local_numbers_use_the_account_country() -> None:
    pk, gb = create_app(make_store(country="PK")), create_app(make_store(country="GB"))
    for emulator in (pk, gb):
        call(emulator, "create/contact", "POST", name="Local", phone="07400 123456", groups="1")
    assert call(pk, "get/contacts")["data"][0]["phone"] == "+923009999999"  # invalid in PK
    assert call(gb, "get/contacts")["data"][0]["phone"] == "+447400123456"


def test_inputs_are_stored_trimmed_and_html_escaped(app: EmulatorApp, store: Store) -> None:
    call(app, "create/group", "POST", name="  R&D <team>  ")
    call(app, "create/contact", "POST", name=" Tom & \"Jerry\" 'O' ", phone=f" {PK} ", groups="1,1")
    contact = call(app, "get/contacts")["data"][0]
    assert contact == {
        "id": 1,
        "groups": ["1", "1"],
        "phone": PK,
        "name": "Tom &amp; &quot;Jerry&quot; &#x27;O&#x27;",
    }
    assert store.groups() == [{"id": 1, "name": "R&amp;D &lt;team&gt;"}]


def test_groups_are_stored_as_a_string_and_listed_as_strings(
    app: EmulatorApp, store: Store
) -> None:
    for name in ("One!", "Two!", "Three"):
        store.add_group(name)
    call(app, "create/contact", "POST", name="Shane", phone=PK, groups="3,1")
    assert store.account.contacts[0].groups == "3,1"
    assert call(app, "get/contacts")["data"][0]["groups"] == ["3", "1"]


# -- create/group ---------------------------------------------------------------------------


def test_create_group_checks_and_duplicates(app: EmulatorApp, store: Store) -> None:
    assert call(app, "create/group", "POST") == fail(400, "Invalid Parameters!")
    assert call(app, "create/group", "POST", name="  ") == fail(400, "Invalid Parameters!")
    assert call(app, "create/group", "POST", name=" abc ") == fail(400, "Group name is too short!")
    for _ in range(2):
        assert call(app, "create/group", "POST", name="Team") == ok(
            "Contact group has been created!"
        )
    assert store.groups() == [{"id": 2, "name": "Team"}, {"id": 1, "name": "Team"}]


# -- pagination --------------------------------------------------------------------------------


@pytest.fixture
def app25(store: Store, app: EmulatorApp) -> EmulatorApp:
    for i in range(1, 26):
        store.add_contact(f"+9230012345{i:02d}", f"Name {i}", [1])
        store.add_group(f"Group {i}")
    return app


def ids(body: dict[str, Any]) -> list[int]:
    assert body["status"] == 200, body
    return [row["id"] for row in body["data"]]


@pytest.mark.parametrize("endpoint", ["get/contacts", "get/groups"])
def test_pagination_has_the_off_by_one(app25: EmulatorApp, endpoint: str) -> None:
    newest_first = list(range(25, 0, -1))
    assert ids(call(app25, endpoint)) == newest_first[:10]  # default limit 10, page 1
    assert ids(call(app25, endpoint, page=0, limit=10)) == newest_first[:10]
    assert ids(call(app25, endpoint, page=1, limit=10)) == newest_first[:10]
    assert ids(call(app25, endpoint, page=2, limit=10)) == newest_first[20:]  # rows 10..19 skipped
    assert call(app25, endpoint, page=3, limit=10)["data"] == []
    assert ids(call(app25, endpoint, page=2, limit=5)) == newest_first[10:15]
    assert ids(call(app25, endpoint, limit=10**6)) == newest_first  # no maximum
    assert call(app25, endpoint, limit=0)["data"] == []


@pytest.mark.parametrize("endpoint", ["get/contacts", "get/groups", "get/unsubscribed"])
@pytest.mark.parametrize(
    "params", [{"page": "x"}, {"limit": "1.5"}, {"limit": "-1"}, {"page": ""}, {"limit": "ten"}]
)
def test_non_integer_page_or_limit(app: EmulatorApp, endpoint: str, params: dict[str, str]) -> None:
    assert call(app, endpoint, **params) == fail(400, "Invalid Parameters!")


def test_unsubscribed_are_listed_by_creation_time(app: EmulatorApp, store: Store) -> None:
    late = store.add_optout("+923001110001", created=300)
    early = store.add_optout("+923001110002", created=100)
    middle = store.add_optout("+923001110003", created=200)
    assert ids(call(app, "get/unsubscribed")) == [late, middle, early]
    assert ids(call(app, "get/unsubscribed", page=2, limit=1)) == [early]


# -- deletes --------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["delete/contact", "delete/group", "delete/unsubscribed"])
def test_delete_checks_its_id_and_always_answers_200(app: EmulatorApp, endpoint: str) -> None:
    for params in ({}, {"id": ""}, {"id": "x"}, {"id": "1.0"}, {"id": "-3"}):
        assert call(app, endpoint, **params) == fail(400, "Invalid Parameters!")
    assert call(app, endpoint, id=12345)["status"] == 200
    assert call(app, endpoint, "POST", id=" 7 ")["status"] == 200


def test_delete_of_another_accounts_row_answers_200_and_removes_nothing(
    app: EmulatorApp, store: Store
) -> None:
    other = store.add_account("PK")
    theirs = store.add_contact(PK, "Theirs", account=other)
    assert call(app, "delete/contact", id=theirs) == ok("Contact has been deleted!")
    assert len(store.contacts(account=other)) == 1
    assert store.stats.changes["delete/contact"] == 0


def test_deleting_a_group_leaves_contact_group_lists(app: EmulatorApp, store: Store) -> None:
    gid = store.add_group("Friends")
    call(app, "create/contact", "POST", name="Shane", phone=PK, groups=str(gid))
    call(app, "delete/group", id=gid)
    assert store.groups() == []
    assert call(app, "get/contacts")["data"][0]["groups"] == [str(gid)]


def test_deleting_a_contact_frees_its_phone(app: EmulatorApp, store: Store) -> None:
    store.add_group("Friends")
    call(app, "create/contact", "POST", name="Shane", phone=PK, groups="1")
    call(app, "delete/contact", id=1)
    assert call(app, "create/contact", "POST", name="Shane", phone=PK, groups="1")["status"] == 200
    assert ids(call(app, "get/contacts")) == [2]


# -- transport: query string, form bodies, JSON ignored ------------------------------------------


def test_urlencoded_and_multipart_forms_are_read(app: EmulatorApp, store: Store) -> None:
    store.add_group("Friends")
    secret = {"secret": store.secret}
    form = {"name": "Urlenc", "phone": PK, "groups": "1"}
    response = request(app, "POST", "create/contact", params=secret, data=form)
    assert response.json()["status"] == 200
    multipart = {"name": "Multi", "phone": "+923001234568", "groups": "1", **secret}
    files = {"ignored": ("a.txt", b"file parts are not parameters")}
    response = request(app, "POST", "create/contact", data=multipart, files=files)
    assert response.json() == ok("Contact has been created!")
    response = request(
        app, "GET", "create/contact", params={**form, **secret, "phone": "03001112223"}
    )
    assert response.json()["status"] == 200
    assert [c["name"] for c in store.contacts()] == ["Urlenc", "Multi", "Urlenc"][::-1]


def test_form_fields_win_over_the_query_string(app: EmulatorApp, store: Store) -> None:
    query = {"secret": store.secret, "name": "Query"}
    response = request(app, "POST", "create/group", params=query, data={"name": "Form!"})
    assert response.json()["status"] == 200
    assert store.groups()[0]["name"] == "Form!"


def test_json_bodies_are_not_read(app: EmulatorApp, store: Store) -> None:
    store.add_group("Friends")
    body = {"name": "Shane", "phone": PK, "groups": "1"}
    response = request(app, "POST", "create/contact", params={"secret": store.secret}, json=body)
    assert response.json() == fail(400, "Invalid Parameters!")
    response = request(app, "POST", "get/contacts", json={"secret": store.secret})
    assert response.json() == fail(400, "Invalid Parameters!")


def test_an_unencoded_plus_in_the_query_string_is_a_trimmed_space(
    app: EmulatorApp, store: Store
) -> None:
    store.add_group("Friends")
    raw = f"create/contact?secret={store.secret}&name=Shane&groups=1&phone=+447400123456"
    assert request(app, "GET", raw).json() == fail(400, "Invalid phone number!")  # 447… local PK
    raw = f"create/group?secret={store.secret}&name=+Bob+"
    assert request(app, "GET", raw).json() == fail(400, "Group name is too short!")
    encoded = f"create/contact?secret={store.secret}&name=Shane&groups=1&phone=%2B447400123456"
    assert request(app, "GET", encoded).json() == ok("Contact has been created!")


def test_a_malformed_multipart_body_is_ignored(app: EmulatorApp, store: Store) -> None:
    headers = {"content-type": "multipart/form-data; boundary=xyz"}
    response = request(
        app,
        "POST",
        "get/groups",
        params={"secret": store.secret},
        content=b"--nope",
        headers=headers,
    )
    assert response.json() == ok("Contact Groups", [])


def test_other_paths_are_not_the_api(app: EmulatorApp) -> None:
    assert request(app, "GET", "http://emulator.test/create/contact").status_code == 404
    assert request(app, "PUT", "get/contacts").status_code == 405


# -- state ------------------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "emulator.json"
    store = Store("GB", quota=5, secret="s3cret", path=path)
    store.add_key("reader", ["get_contacts"])
    store.add_optout("+447400000001", created=7)
    first = create_app(store)
    call(first, "create/group", "POST", name="Friends")
    call(first, "create/contact", "POST", name="Tom & Jerry", phone="07400123456", groups="1")
    call(first, "create/contact", "POST", name="Gone", phone="07400123457", groups="1")
    call(first, "delete/contact", id=2)

    again = Store.load(path)
    assert (again.secret, again.account.country, again.account.quota) == ("s3cret", "GB", 5)
    assert again.contacts() == store.contacts() and again.optouts() == store.optouts()
    second = create_app(again)
    assert call(second, "get/contacts", secret="reader")["data"][0]["name"] == "Tom &amp; Jerry"
    call(second, "create/contact", "POST", name="Newer", phone="07400123458", groups="1")
    assert ids(call(second, "get/contacts")) == [3, 1]  # ids are not reused
    assert [p.name for p in path.parent.iterdir()] == ["emulator.json"]  # no temp files left


def test_a_bad_state_file_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    for text in ("{not json", json.dumps({"version": 99}), json.dumps({"version": 1})):
        path.write_text(text)
        with pytest.raises(StateError):
            Store.load(path)


def test_without_state_each_store_is_a_fresh_account() -> None:
    first, second = Store(), Store()
    assert first.secret != second.secret and len(first.secret) == 40
    assert first.contacts() == first.groups() == first.optouts() == []
    assert first.key(first.secret) is not None and first.account.package


# -- counters -----------------------------------------------------------------------------------


def test_counters_tell_reads_from_writes(app: EmulatorApp, store: Store) -> None:
    call(app, "get/contacts")
    call(app, "get/groups")
    assert store.stats.writes() == 0
    call(app, "create/group", "POST", name="Friends")
    call(app, "delete/contact", id=99)
    assert store.stats.writes() == 2
    assert store.stats.changes == {"create/group": 1}
    stats = request(app, "GET", "http://emulator.test/_emulator/stats").json()
    expected = {"get/contacts": 1, "get/groups": 1, "create/group": 1, "delete/contact": 1}
    assert stats["requests"] == expected
    store.stats.reset()
    assert store.stats.writes() == 0


# -- faults, in-process -------------------------------------------------------------------------


@pytest.mark.parametrize(("faults", "status"), [(Faults(p503=1), 503), (Faults(p502=1), 502)])
def test_proxy_5xx_has_an_html_body_and_does_no_work(
    app: EmulatorApp, store: Store, faults: Faults, status: int
) -> None:
    app.set_faults(faults)
    response = request(
        app, "POST", "create/group", params={"secret": store.secret}, data={"name": "Team"}
    )
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    assert store.groups() == []


def test_proxy_429_carries_retry_after(app: EmulatorApp, store: Store) -> None:
    app.set_faults(Faults(p429=1, retry_after=7))
    response = request(app, "GET", "get/contacts", params={"secret": store.secret})
    assert (response.status_code, response.headers["retry-after"]) == (429, "7")
    assert "429 Too Many Requests" in response.text
    app.set_faults(Faults(p429=1, json_429=True, retry_after=None))
    response = request(app, "GET", "get/contacts", params={"secret": store.secret})
    assert response.status_code == 429 and "retry-after" not in response.headers
    assert response.json() == {"message": "Too Many Requests"}  # the proxy's JSON, not an envelope
    app.set_faults(None)
    assert call(app, "get/contacts")["status"] == 200
    assert store.stats.faults == {"429": 2}


def test_lost_answer_as_a_drop_stores_the_change(app: EmulatorApp, store: Store) -> None:
    store.add_group("Friends")
    app.set_faults(Faults(lost=1, scope="writes"))
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        call(app, "create/contact", "POST", name="Shane", phone=PK, groups="1")
    assert isinstance(caught.value, AnswerLost)
    assert caught.value.request.url.path == "/api/create/contact"
    assert [c["phone"] for c in store.contacts()] == [PK]
    assert call(app, "get/contacts")["status"] == 200  # reads are out of scope
    app.set_faults(None)
    retried = call(app, "create/contact", "POST", name="Shane", phone=PK, groups="1")
    assert retried == fail(400, "Phone number already exist in your contact book!")


def test_lost_answer_as_a_502_stores_the_change(app: EmulatorApp, store: Store) -> None:
    app.set_faults(Faults(lost=1, lost_as="502"))
    response = request(
        app, "POST", "create/group", params={"secret": store.secret}, data={"name": "Team"}
    )
    assert response.status_code == 502 and "Bad Gateway" in response.text
    assert store.groups() == [{"id": 1, "name": "Team"}]


def test_faults_by_scope_and_count(app: EmulatorApp, store: Store) -> None:
    app.set_faults([Faults(p503=1, scope="reads"), Faults(p429=1, scope="writes", times=2)])
    secret = {"secret": store.secret}
    assert request(app, "GET", "get/groups", params=secret).status_code == 503
    codes = [
        request(app, "POST", "create/group", params=secret, data={"name": "Team"}).status_code
        for _ in range(3)
    ]
    assert codes == [429, 429, 200]
    assert len(store.groups()) == 1


def test_latency_and_jitter(app: EmulatorApp) -> None:
    app.set_faults(Faults(latency_ms=60, jitter_ms=20))
    started = time.perf_counter()
    call(app, "get/groups")
    assert time.perf_counter() - started >= 0.06  # a floor only: speed lives in `make bench`


def test_the_seed_makes_chaos_reproducible() -> None:
    def rolls(seed: int) -> list[str | None]:
        chaos = Chaos(Faults(p429=0.2, p503=0.2, lost=0.2, lost_as="either"), seed=seed)
        return [chaos.decide(is_write=True).kind for _ in range(200)]

    assert rolls(1) == rolls(1) != rolls(2)
    assert {"429", "503", "drop", "lost502", None} == set(rolls(1))


# -- over real loopback ---------------------------------------------------------------------------


def test_over_loopback_drop_is_a_transport_error_and_429_a_response(
    app: EmulatorApp, store: Store
) -> None:
    store.add_group("Friends")
    secret = {"secret": store.secret}
    with run_in_thread(app) as base_url, httpx.Client(base_url=base_url) as client:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/")
        assert client.get("get/groups", params=secret).json()["message"] == "Contact Groups"
        app.set_faults(Faults(lost=1, scope="writes"))
        form = {"name": "Shane", "phone": PK, "groups": "1"}
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("create/contact", params=secret, data=form)
        assert len(store.contacts()) == 1
        app.set_faults(Faults(p429=1, retry_after=3))
        response = client.get("get/contacts", params=secret)
        assert (response.status_code, response.headers["retry-after"]) == (429, "3")
        app.set_faults(None)
        assert client.get("get/contacts", params=secret).json()["data"][0]["phone"] == PK
        assert client.get(base_url.replace("/api/", "/_emulator/stats")).json()["faults"] == {
            "drop": 1,
            "429": 1,
        }


# -- size (speed is measured in `make bench`, never in tests) ---------------------------------


def test_listing_100k_contacts_in_one_call(store: Store, app: EmulatorApp) -> None:
    for i in range(100_000):
        store.add_contact(f"+9230{i:08d}", f"Name {i}", [1])
    data = call(app, "get/contacts", limit=100_000)["data"]
    assert (len(data), data[0]["id"], data[-1]["id"]) == (100_000, 100_000, 1)


def test_creating_1000_contacts_keeps_every_one(store: Store) -> None:
    store.add_group("Friends")
    for i in range(1000):
        params = {"secret": store.secret, "name": f"Name {i}", "phone": f"+9230012{i:05d}"}
        assert dispatch(store, "create/contact", {**params, "groups": "1"}).status == 200
    assert len(store.contacts()) == 1000
    assert dispatch(store, "create/contact", {**params, "groups": "1"}).message.startswith(
        "Phone number already exist"
    )


# -- the command ------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_serves_with_a_fixed_secret_and_state(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    args = ["--port", "0", "--secret", "S", "--state", str(state), "--country", "GB"]
    args += ["--optout", "+447400000009", "--key", "ro:get_contacts,get_groups", "--quota", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "sync", "emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline()
            if not first:
                pytest.fail(f"the emulator did not start:\n{proc.stderr.read()}")
            assert "listening on http://127.0.0.1:" in first
            base_url = first.split()[-1]
            assert proc.stdout.readline().strip() == "secret: S"
            with httpx.Client(base_url=base_url) as client:
                opt = client.get("get/unsubscribed", params={"secret": "S"}).json()
                assert opt["data"][0]["phone"] == "+447400000009"
                denied = client.get("get/unsubscribed", params={"secret": "ro"}).json()
                assert denied["status"] == 403
                client.post("create/group", params={"secret": "S"}, data={"name": "Friends"})
                form = {"name": "Local", "phone": "07400123456", "groups": "1"}
                client.post("create/contact", params={"secret": "S"}, data=form)
                full = client.post("create/contact", params={"secret": "S"}, data=form).json()
                assert full["message"] == "You have reached the maximum allowed contacts!"
        finally:
            proc.terminate()
            proc.wait(10)
    assert Store.load(state).contacts()[0]["phone"] == "+447400123456"


def test_a_refused_write_did_no_work_so_no_answer_is_lost(app: EmulatorApp, store: Store) -> None:
    store.add_group("Friends")
    app.set_faults(Faults(lost=1.0, lost_as="502", times=1, scope="writes"))
    secret = {"secret": store.secret}
    refused = request(app, "POST", "create/contact", params=secret, data={})
    assert refused.status_code == 200 and refused.json()["message"] == "Invalid Parameters!"
    form = {"name": "Shane", "phone": PK, "groups": "1"}
    lost = request(app, "POST", "create/contact", params=secret, data=form)
    assert lost.status_code == 502, "the fault was kept for the first write that did work"
    assert len(store.contacts()) == 1
