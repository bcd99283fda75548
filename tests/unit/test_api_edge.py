"""The API's edge: request models refuse what Graph would refuse, cursors belong to their query, ETags."""

from __future__ import annotations

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
    with pytest.raises(ValidationError, match="email cannot be cleared"):
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
