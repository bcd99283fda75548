"""Settings are read once from the environment; every problem names its setting, and no value is echoed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config import ConfigError, load_settings
from tools import procs

STORAGE = procs.AzuritePorts(10000, 10001, 10002).connection_string


API_TENANT = "5b7e0f8a-2c1d-4e6f-9a3b-0d4c8e2f1a60"


def minimal(**extra: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": STORAGE,
        "WARDEN_KEY_VAULT_URL": "https://vault.example.net/",
        "WARDEN_API_TENANT_ID": API_TENANT,
        "WARDEN_API_AUDIENCE": "api://warden, 6c1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
        **extra,
    }


def test_minimal_settings_get_azure_defaults() -> None:
    s = load_settings(minimal())
    assert s.graph_url == "https://graph.microsoft.com/v1.0"
    assert s.authority_host == "https://login.microsoftonline.com"
    assert s.key_vault_url == "https://vault.example.net"
    assert s.verify_key_vault_challenge is True
    assert s.local_identity is None and s.demo_directory is None
    assert s.tls_verify is True
    assert s.health_timeout_seconds == 5.0
    assert s.api_tenant_id == API_TENANT
    assert s.api_audiences == ("api://warden", "6c1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
    assert s.table_prefix == "warden"


def test_every_problem_is_reported_at_once_and_names_its_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "WARDEN_GRAPH_URL": "http://graph.local/v1.0",
                "WARDEN_HEALTH_TIMEOUT_SECONDS": "0",
                "WARDEN_KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "maybe",
            }
        )
    named = " ".join(caught.value.problems)
    for setting in (
        "AzureWebJobsStorage",
        "WARDEN_KEY_VAULT_URL",
        "WARDEN_GRAPH_URL",
        "WARDEN_HEALTH_TIMEOUT_SECONDS",
        "WARDEN_KEY_VAULT_VERIFY_CHALLENGE_RESOURCE",
        "WARDEN_API_TENANT_ID",
        "WARDEN_API_AUDIENCE",
    ):
        assert setting in named
    assert len(caught.value.problems) == 7


def test_api_settings_are_checked_and_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(minimal(WARDEN_API_TENANT_ID="contoso", WARDEN_TABLE_PREFIX="9-bad"))
    assert caught.value.problems == [
        "WARDEN_API_TENANT_ID is malformed: expected the Entra tenant id (a GUID) of Warden's API app",
        "WARDEN_TABLE_PREFIX is malformed: expected 1-40 letters and digits, starting with a letter",
    ]


def test_malformed_connection_string_is_not_echoed() -> None:
    leaked = "AccountKey=c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw=="
    with pytest.raises(ConfigError) as caught:
        load_settings(minimal(AzureWebJobsStorage=f"BlobEndpoint=x;{leaked}"))
    assert "AzureWebJobsStorage is malformed" in str(caught.value)
    assert "c2VjcmV0" not in str(caught.value)


def test_partial_local_identity_is_refused_naming_the_missing_parts() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(minimal(AZURE_CLIENT_ID="abc"))
    assert caught.value.problems == [
        "AZURE_TENANT_ID, AZURE_CLIENT_SECRET missing: a local (client secret) identity for Key Vault "
        "needs all of AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET"
    ]


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WARDEN_CA_BUNDLE"):
        load_settings(minimal(WARDEN_CA_BUNDLE=str(tmp_path / "missing.pem")))
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert load_settings(minimal(WARDEN_CA_BUNDLE=str(ca))).tls_verify == str(ca)


def test_secrets_never_appear_in_repr() -> None:
    s = load_settings(minimal(AZURE_TENANT_ID="t", AZURE_CLIENT_ID="c", AZURE_CLIENT_SECRET="s3cr3t-value"))
    assert "s3cr3t-value" not in repr(s)
    assert "Eby8vdM02x" not in repr(s)  # the storage account key


def test_sample_settings_name_every_setting_warden_reads() -> None:
    source = (procs.ROOT / "shared" / "config.py").read_text()
    sample = json.loads((procs.ROOT / "local.settings.sample.json").read_text())["Values"]
    import re

    read = set(re.findall(r'"((?:WARDEN|AZURE)_[A-Z_]+|AzureWebJobsStorage)"', source))
    assert read, "no settings found in shared/config.py"
    assert read <= set(sample), f"missing from local.settings.sample.json: {sorted(read - set(sample))}"
