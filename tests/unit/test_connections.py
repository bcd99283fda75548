"""Connections' pure rules and edge checks (rule 18): what Entra's codes mean, which app credential is Warden's,
when an expiry is warned of, certificates checked before anything is kept, notify URLs, notification payloads and
their delivery's retry schedule."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from shared.adapters.notifications import notification_from, notification_message, signatures
from shared.api.credentials import CertificateRefused, parse_certificate
from shared.config import load_settings
from shared.domain.connections import (
    AppCredential,
    credential_in_use,
    expiring,
    expiry_warning,
    is_lapse,
    lapse_reason,
)
from shared.domain.errors import Invalid
from shared.domain.model import Directory, DirectoryOptions
from shared.service.connections.ports import Notification
from shared.service.hr.events import SigningKeys, new_signing_secret
from shared.service.notifications import RETRY_SCHEDULE_SECONDS, Deliveries, Sent, check_notify_url, payload
from tools.selfsigned import self_signed

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
D = "0b0b0b0b-0000-4000-8000-000000000001"


# ----------------------------------------------------------------------------------------- Entra's codes
@pytest.mark.parametrize(
    ("error", "codes", "mode", "words", "todo"),
    [
        ("invalid_grant", [700082], "delegated", "90 days without use", "consent again"),
        ("invalid_grant", [50173], "delegated", "sessions were revoked", "consent again"),
        ("invalid_grant", [50057], "delegated", "account is disabled", "consent again"),
        ("invalid_grant", [70043], "delegated", "sign-in frequency", "consent again"),
        ("invalid_client", [7000222], "app", "client secret has expired", "new client secret or certificate"),
        (
            "invalid_client",
            [7000215],
            "delegated",
            "client secret is wrong",
            "new client secret or certificate",
        ),
        ("invalid_client", [700027], "app", "certificate is unknown", "new client secret or certificate"),
    ],
)
def test_a_lapse_says_what_happened_with_its_code_and_what_to_do(
    error: str, codes: list[int], mode: Any, words: str, todo: str
) -> None:
    code, reason = lapse_reason(D, mode, error, codes)
    assert code == f"AADSTS{codes[0]}" and f"({code})" in reason
    assert words in reason and todo in reason and f"/api/directories/{D}/reactivate" in reason


def test_only_errors_no_retry_can_cure_are_lapses() -> None:
    assert is_lapse("invalid_grant") and is_lapse("invalid_client") and is_lapse("no_sign_in")
    assert not is_lapse("temporarily_unavailable") and not is_lapse("invalid_request")


# --------------------------------------------------------------------------------------- the credential
SECRETS = (
    AppCredential("k-old", "secret", NOW + dt.timedelta(days=400), hint="abc"),
    AppCredential("k-new", "secret", NOW + dt.timedelta(days=5), hint="xyz"),
    AppCredential("k-cert", "certificate", NOW + dt.timedelta(days=90), custom_key_identifier="c2hhMQ=="),
)


def test_the_credential_in_use_is_found_by_key_id_then_hint_or_thumbprint() -> None:
    by_hint, _ = credential_in_use(SECRETS, kind="secret", key_id=None, hint="xyz", sha1=None)
    assert by_hint is not None and by_hint.key_id == "k-new"
    by_id, _ = credential_in_use(SECRETS, kind="secret", key_id="K-OLD", hint="xyz", sha1=None)
    assert by_id is not None and by_id.key_id == "k-old", "a keyId once known wins over the hint"
    cert, _ = credential_in_use(SECRETS, kind="certificate", key_id=None, hint=None, sha1="c2hhMQ==")
    assert cert is not None and cert.key_id == "k-cert"
    assert credential_in_use(SECRETS, kind="certificate", key_id=None, hint=None, sha1="other")[0] is None
    assert credential_in_use(SECRETS, kind="secret", key_id=None, hint="zzz", sha1=None)[0] is None


def test_two_secrets_sharing_a_hint_give_the_earlier_expiry_and_say_so() -> None:
    twins = (*SECRETS, AppCredential("k-twin", "secret", NOW + dt.timedelta(days=2), hint="xyz"))
    found, warning = credential_in_use(twins, kind="secret", key_id=None, hint="xyz", sha1=None)
    assert found is not None and found.key_id == "k-twin" and warning and "earliest" in warning


def test_an_expiry_is_warned_of_seven_days_ahead_and_once_past() -> None:
    assert expiry_warning(NOW + dt.timedelta(days=8), NOW, "client secret") is None
    soon = expiry_warning(NOW + dt.timedelta(days=5), NOW, "client secret")
    assert soon and "expires within 5 days" in soon and "reactivate" in soon
    assert "expires within 1 day " in (expiry_warning(NOW + dt.timedelta(hours=3), NOW, "certificate") or "")
    gone = expiry_warning(NOW - dt.timedelta(seconds=1), NOW, "certificate")
    assert gone and "certificate expired on 2027-03-01" in gone
    assert expiring(NOW + dt.timedelta(days=7), NOW) and not expiring(
        NOW + dt.timedelta(days=7, seconds=1), NOW
    )
    assert not expiring(None, NOW)


# -------------------------------------------------------------------------------------------- certificates
def test_a_usable_certificate_gives_its_thumbprints_and_not_after() -> None:
    c = self_signed(days=30)
    parsed = parse_certificate(c.cert_pem + c.key_pem, dt.datetime.now(dt.UTC))
    import base64
    import hashlib

    assert parsed.thumbprint == hashlib.sha256(c.der).hexdigest()
    assert base64.b64decode(parsed.sha1).hex() == c.sha1_hex
    assert dt.timedelta(days=29) < parsed.not_after - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    assert c.key_pem not in repr(parsed)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda c, o: "no pem here", "is not PEM"),
        (lambda c, o: c.cert_pem, "exactly one private key"),
        (lambda c, o: c.key_pem, "holds no certificate"),
        (lambda c, o: c.cert_pem + o.key_pem, "does not match"),
        (lambda c, o: c.cert_pem + c.key_pem + o.key_pem, "exactly one private key"),
        (
            lambda c, o: c.cert_pem.replace("MII", "XXX", 1) + c.key_pem,
            "certificate cannot be read",
        ),
        (
            lambda c, o: (
                c.cert_pem
                + "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
            ),
            "encrypted",
        ),
    ],
)
def test_a_certificate_that_cannot_serve_is_refused_naming_the_problem(make: Any, words: str) -> None:
    c, other = self_signed(days=30), self_signed("other", days=30)
    with pytest.raises(CertificateRefused, match=words):
        parse_certificate(make(c, other), dt.datetime.now(dt.UTC))


def test_an_expired_or_not_yet_valid_certificate_is_refused() -> None:
    old = self_signed(days=-1, not_before_days=-10)
    with pytest.raises(CertificateRefused, match="expired on"):
        parse_certificate(old.cert_pem + old.key_pem, dt.datetime.now(dt.UTC))
    early = self_signed(days=30, not_before_days=2)
    with pytest.raises(CertificateRefused, match="not valid before"):
        parse_certificate(early.cert_pem + early.key_pem, dt.datetime.now(dt.UTC))


# --------------------------------------------------------------------------------------------- notify URLs
def test_notify_urls_are_https_and_loopback_http_only_outside_azure() -> None:
    assert check_notify_url("https://hooks.example/warden", allow_loopback_http=False)
    assert check_notify_url("http://127.0.0.1:9000/x", allow_loopback_http=True)
    assert check_notify_url("http://localhost/x", allow_loopback_http=True)
    with pytest.raises(Invalid, match="runs in Azure"):
        check_notify_url("http://127.0.0.1:9000/x", allow_loopback_http=False)
    for bad in ("http://hooks.example/x", "ftp://hooks.example/x", "https://user:pw@hooks.example/x"):
        with pytest.raises(Invalid):
            check_notify_url(bad, allow_loopback_http=True)


def test_azure_is_recognised_by_its_app_service_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "WARDEN_KEY_VAULT_URL": "https://vault.example/",
        "WARDEN_API_TENANT_ID": "5b7e0f8a-2c1d-4e6f-9a3b-0d4c8e2f1a60",
        "WARDEN_API_AUDIENCE": "api://warden",
    }
    local = load_settings(base)
    assert not local.in_azure and local.redirect_uri is None and local.token_refresh_max_age_hours == 168
    azure = load_settings(
        {**base, "WEBSITE_INSTANCE_ID": "abc", "WEBSITE_HOSTNAME": "warden.azurewebsites.net"}
    )
    assert azure.in_azure and azure.redirect_uri == "https://warden.azurewebsites.net/api/oauth/callback"
    pinned = load_settings({**base, "WARDEN_PUBLIC_URL": "http://127.0.0.1:7071/"})
    assert pinned.redirect_uri == "http://127.0.0.1:7071/api/oauth/callback"
    from shared.config import ConfigError

    with pytest.raises(ConfigError, match="WARDEN_PUBLIC_URL is malformed"):
        load_settings({**base, "WARDEN_PUBLIC_URL": "http://warden.example"})
    with pytest.raises(ConfigError, match="WARDEN_TOKEN_REFRESH_MAX_AGE_HOURS is malformed"):
        load_settings({**base, "WARDEN_TOKEN_REFRESH_MAX_AGE_HOURS": "2200"})


# ------------------------------------------------------------------------------------------- notifications
EVENT = Notification(
    "evt-1", "directory.needs_reactivation", D, NOW, {"directoryId": D, "code": "AADSTS50173"}
)


def test_a_queued_notification_carries_the_event_and_its_attempt() -> None:
    back, attempt = notification_from(json.loads(notification_message(EVENT, 3)))
    assert back == EVENT and attempt == 3


def test_during_a_rotations_overlap_either_secret_verifies_the_signature() -> None:
    new, old = new_signing_secret(), new_signing_secret()
    body = payload(EVENT)
    header = signatures((new, old), EVENT.id, NOW, body)
    headers = {
        "webhook-id": EVENT.id,
        "webhook-timestamp": str(int(NOW.timestamp())),
        "webhook-signature": header,
    }
    for secret in (new, old):
        wh = Webhook(secret)
        assert wh.sign(EVENT.id, NOW, body.decode()) in header.split(" ")
    assert json.loads(body) == {"type": EVENT.type, "timestamp": "2027-03-01T12:00:00Z", "data": EVENT.data}
    assert headers["webhook-signature"].count("v1,") == 2


@dataclass
class Recorder:
    answers: list[Sent]
    sent: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    queued: list[tuple[int, int]] = field(default_factory=list)
    audited: list[tuple[str, str]] = field(default_factory=list)

    async def post(
        self, url: str, message_id: str, at: dt.datetime, body: bytes, secrets: tuple[str, ...]
    ) -> Sent:
        self.sent.append((url, secrets))
        return self.answers.pop(0)

    async def enqueue(self, notification: Notification, *, attempt: int = 0, delay_seconds: int = 0) -> None:
        self.queued.append((attempt, delay_seconds))

    async def record(self, actor: Any, action: str, **fields: Any) -> None:
        self.audited.append((action, fields.get("result", "succeeded")))

    def warning(self, event: str, **fields: Any) -> None:
        self.audited.append(("log:" + event, ""))


class Directories:
    async def get(self, directory_id: str) -> tuple[Directory, str] | None:
        d = Directory(
            D,
            "Contoso",
            "t",
            "app",
            "c",
            "s",
            (),
            "active",
            DirectoryOptions(notify_url="https://hooks.example/w"),
            NOW,
            NOW,
        )
        return d, "etag"


class Keys:
    async def read(self, *, fresh: bool = False) -> SigningKeys | None:
        return SigningKeys("whsec_current")


def deliveries(r: Recorder) -> Deliveries:
    return Deliveries(Directories(), Keys(), r, r, r, lambda: NOW, r)  # type: ignore[arg-type]


async def test_a_failed_delivery_is_queued_again_on_the_schedule_and_the_last_failure_is_audited() -> None:
    r = Recorder([Sent(False, 500, "HTTP 500")])
    done = await deliveries(r).deliver(EVENT, 0)
    assert done.outcome == "retrying" and r.queued == [(1, RETRY_SCHEDULE_SECONDS[1])]
    assert r.sent == [("https://hooks.example/w", ("whsec_current",))]
    last = len(RETRY_SCHEDULE_SECONDS) - 1
    r2 = Recorder([Sent(False, None, "unreachable (ConnectError)")])
    final = await deliveries(r2).deliver(EVENT, last)
    assert final.outcome == "failed" and r2.queued == []
    assert ("notification.failed", "failed: unreachable (ConnectError)") in r2.audited
    assert ("log:notification.failed", "") in r2.audited
    r3 = Recorder([Sent(True, 204)])
    assert (await deliveries(r3).deliver(EVENT, 2)).outcome == "sent" and r3.audited == [
        ("notification.sent", "succeeded")
    ]
