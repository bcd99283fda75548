"""The API's edge: request models refuse what Graph would refuse, cursors belong to their query, ETags."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from shared.api import schemas as s
from shared.api.views import etag_header, if_match_etag, user_changes, user_fields
from shared.domain.errors import Invalid
from shared.service.paging import decode_cursor, encode_cursor

BASE = {"username": "ada", "email": "ada@contoso.example", "firstName": "Ada", "lastName": "Lovelace"}


def errors(**fields: object) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        s.UserCreate.model_validate({**BASE, **fields})
    return {".".join(str(p) for p in e["loc"]) for e in caught.value.errors()}


def test_the_company_email_follows_entras_upn_rules() -> None:
    assert errors(email="ada+news@contoso.example") == {"email"}, "'+' is not allowed in a UPN"
    assert errors(email="ada.@contoso.example") == {"email"}, "no '.' just before the @"
    assert errors(email="a" * 65 + "@contoso.example") == {"email"}
    assert errors(email="ada@" + "d" * 45 + ".com") == {"email"}, "the domain part has at most 48 characters"
    ok = s.UserCreate.model_validate({**BASE, "email": "Ada.O'Neil@Contoso.EXAMPLE"})
    assert ok.email == "Ada.O'Neil@contoso.example"


def test_names_and_attributes_keep_graphs_length_limits() -> None:
    assert errors(firstName="x" * 65) == {"firstName"}
    assert errors(employeeId="E" * 17) == {"employeeId"}
    assert errors(jobTitle="t" * 129) == {"jobTitle"}
    assert errors(displayName="d" * 257) == {"displayName"}
    assert errors(username="a b") == {"username"} and errors(username="a@b") == {"username"}
    assert errors(firstName="tab\there") == {"firstName"}


def test_states_zones_and_dates_are_checked() -> None:
    assert errors(state="retired") == {"state"}
    assert errors(timeZone="Mars/Olympus") == {"timeZone"}
    assert errors(startAt="2027-13-01") == {"startAt"}
    assert errors(unknown=1) == {"unknown"}


def test_display_name_defaults_to_first_and_last_name() -> None:
    assert user_fields(s.UserCreate.model_validate(BASE))["display_name"] == "Ada Lovelace"


def test_a_patch_carries_only_the_given_fields_and_null_clears_optional_ones() -> None:
    patch = s.UserPatch.model_validate({"department": None, "jobTitle": "Engineer"})
    assert user_changes(patch) == {"department": None, "job_title": "Engineer"}
    with pytest.raises(ValidationError, match="email cannot be null"):
        s.UserPatch.model_validate({"email": None})


def test_a_directory_secret_never_shows_in_the_model_repr() -> None:
    body = s.DirectoryCreate.model_validate(
        {
            "name": "C",
            "tenantId": "9C3B1A2D-4E5F-4A6B-8C7D-0E1F2A3B4C5D",
            "auth": {
                "mode": "app",
                "clientId": "1f2e3d4c-5b6a-4798-8877-665544332211",
                "clientSecret": "s3cr3t",
            },
        }
    )
    assert "s3cr3t" not in repr(body) and body.tenantId == "9c3b1a2d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"


def test_a_cursor_continues_only_its_own_query() -> None:
    cursor = encode_cursor("users:active", {"PartitionKey": "p", "RowKey": "r"})
    assert decode_cursor("users:active", cursor) == {"PartitionKey": "p", "RowKey": "r"}
    assert decode_cursor("users:active", None) is None
    with pytest.raises(Invalid, match="another list or other filters"):
        decode_cursor("users:staged", cursor)
    with pytest.raises(Invalid, match="not a cursor"):
        decode_cursor("users:active", "!!!")


def test_etags_are_shown_strong_and_if_match_maps_back() -> None:
    stored = "W/\"datetime'2026-11-27T01%3A02%3A03.1234567Z'\""
    shown = etag_header(stored)
    assert shown == "\"datetime'2026-11-27T01%3A02%3A03.1234567Z'\""
    assert if_match_etag(shown) == stored and if_match_etag(stored) == stored
    assert if_match_etag("*") is None and if_match_etag(None) is None


def test_values_are_taken_as_the_document_types_them_without_coercion_or_trimming() -> None:
    def body(**fields: object) -> None:
        s.UserCreate.model_validate_json(json.dumps({**BASE, **fields}))

    for bad in (
        {"jobTitle": 7},
        {"firstName": True},
        {"state": None},
        {"username": " ada"},
        {"firstName": "  "},
    ):
        with pytest.raises(ValidationError):
            body(**bad)
    body(jobTitle="Engineer")
    guard = s.MassChangeGuardIn.model_validate_json('{"percent": 5, "count": 7.0}')
    assert guard.count == 7, "7.0 is JSON Schema's integer 7"
    with pytest.raises(ValidationError):
        s.MassChangeGuardIn.model_validate_json('{"count": "7"}')


def test_a_field_that_may_be_left_out_may_not_be_null_and_its_schema_says_so() -> None:
    with pytest.raises(ValidationError, match="name cannot be null"):
        s.GroupPatch.model_validate_json('{"name": null}')
    assert s.GroupPatch.model_validate_json('{"description": null}').description is None, "null clears it"
    schema = s.GroupPatch.model_json_schema()["properties"]
    assert "null" not in json.dumps(schema["name"]) and "null" in json.dumps(schema["description"])


def test_query_values_are_parsed_as_json_schema_reads_them() -> None:
    assert s.ListQuery.model_validate({"limit": "20"}).limit == 20
    assert s.ListQuery.model_validate({"limit": "20.0"}).limit == 20
    assert s.CandidateQuery.model_validate({"enabled": "false"}).enabled is False
    for bad in ({"limit": "2.5"}, {"limit": "true"}, {"cursor": "not/ours"}):
        with pytest.raises(ValidationError):
            s.ListQuery.model_validate(bad)
    with pytest.raises(ValidationError):
        s.CandidateQuery.model_validate({"enabled": "1"})
    for since in ("2026-11-27", "0", "2026-02-30T00:00:00Z", "2026-11-27T00:00:00"):
        with pytest.raises(ValidationError):
            s.AuditQueryIn.model_validate({"since": since})
    assert s.AuditQueryIn.model_validate({"since": "2026-11-27T09:00:00+01:00"}).since is not None


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2028-02-29", True),
        ("2027-02-29", False),
        ("2100-02-29", False),
        ("2000-02-29", True),
        ("2027-04-31", False),
        ("2027-12-31T23:59", True),
        ("2027-01-04 09:00:00.5+05:30", True),
        ("2027-13-01", False),
        ("0001-01-01", False),
    ],
)
def test_the_local_date_pattern_admits_exactly_the_dates_that_exist(value: str, valid: bool) -> None:
    """The document's pattern is the API's check: what it admits always parses."""
    assert bool(re.fullmatch(s.LOCAL_DATE_PATTERN, value)) is valid
    if valid:
        assert s.UserPatch.model_validate_json(json.dumps({"startAt": value})).startAt == value


def test_passwords_follow_entras_policy_in_the_document_and_at_the_edge() -> None:
    for weak in ("aaaaaaaa", "Abcdefgh", "Abcdéfg1", "Ab1!", "A" * 255 + "b1"):
        assert not re.fullmatch(s.PASSWORD_PATTERN, weak)
        with pytest.raises(ValidationError):
            s.PasswordIn.model_validate_json(json.dumps({"password": weak}))
    for strong in ("Abcdefg1", "abc def!1", "ABC-DEF-1"):
        assert re.fullmatch(s.PASSWORD_PATTERN, strong)
        s.PasswordIn.model_validate_json(json.dumps({"password": strong}))


def test_connecting_takes_exactly_one_credential_in_either_mode() -> None:
    """Rule 18: app-only or delegated, each with a client secret or a certificate (PEM) - exactly one; a
    certificate's expiry is its own, so an admin-given date goes only with a secret. The JSON Schema says the same
    (``oneOf``), so a client sees it before it asks."""
    base = {"name": "C", "tenantId": "9c3b1a2d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"}
    client = "1f2e3d4c-5b6a-4798-8877-665544332211"
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    for auth in (
        {"mode": "app", "clientId": client, "clientSecret": "x"},
        {"mode": "app", "clientId": client, "certificatePem": pem},
        {"mode": "delegated", "clientId": client, "clientSecret": "x", "loginHint": "admin@contoso.example"},
        {"mode": "delegated", "clientId": client, "certificatePem": pem},
        {
            "mode": "app",
            "clientId": client,
            "clientSecret": "x",
            "credentialExpiresAt": "2027-01-01T00:00:00Z",
        },
    ):
        body = s.DirectoryCreate.model_validate_json(json.dumps({**base, "auth": auth}))
        assert body.auth.mode == auth["mode"]
    for auth in (
        {"mode": "app", "clientId": client},
        {"mode": "delegated", "clientId": client},
        {"mode": "app", "clientId": client, "clientSecret": "x", "certificatePem": pem},
        {
            "mode": "app",
            "clientId": client,
            "certificatePem": pem,
            "credentialExpiresAt": "2027-01-01T00:00:00Z",
        },
        {"mode": "app", "clientId": client, "certificatePem": "not a pem"},
        {"mode": "app", "clientId": client, "clientSecret": "x", "loginHint": "a@b.example"},
        {"mode": "sso", "clientId": client, "clientSecret": "x"},
    ):
        with pytest.raises(ValidationError):
            s.DirectoryCreate.model_validate_json(json.dumps({**base, "auth": auth}))
    schema = s.AppAuth.model_json_schema()
    assert [sorted(b["required"]) for b in schema["oneOf"]] == [["clientSecret"], ["certificatePem"]]
