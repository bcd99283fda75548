"""SAML IdP metadata read with defusedxml and cryptography: what an IdP exports is read; a document declaring a DTD,
entities or external references is refused before anything in it is expanded or fetched."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.adapters.saml import certificate_of, read_metadata
from shared.domain.errors import BadInput, Invalid
from tools import samlmeta

NOW = dt.datetime.now(dt.UTC)
CERT = samlmeta.certificate("idp.example signing", days=90)
NEXT = samlmeta.certificate("idp.example signing (next)", days=400, not_before_days=0)


def test_an_idps_metadata_gives_issuer_sign_in_and_out_and_each_signing_certificate() -> None:
    xml = samlmeta.metadata(
        "https://idp.example/saml2/a.example",
        "https://idp.example/sso",
        [CERT, NEXT],
        sign_out="https://idp.example/logout",
    )
    m = read_metadata(xml)
    assert (m.entity_id, m.sign_in_uri, m.sign_out_uri) == (
        "https://idp.example/saml2/a.example",
        "https://idp.example/sso",
        "https://idp.example/logout",
    )
    assert [c.subject for c in m.certificates] == ["CN=idp.example signing", "CN=idp.example signing (next)"]
    first = m.certificates[0]
    assert first.der == CERT and len(first.thumbprint) == 40 and first.thumbprint == first.thumbprint.upper()
    assert first.not_before < NOW < first.not_after and not m.unreadable


def test_a_certificate_that_cannot_be_read_is_named_not_dropped() -> None:
    m = read_metadata(
        samlmeta.metadata("https://idp.example/x", "https://idp.example/sso", ["bm90IGEgY2VydA=="])
    )
    assert m.certificates == () and m.unreadable == ("KeyDescriptor 1: not a DER X.509 certificate",)
    with pytest.raises(ValueError, match="not base64"):
        certificate_of("***")


def test_encryption_keys_are_not_signing_keys() -> None:
    xml = samlmeta.metadata("https://idp.example/x", "https://idp.example/sso", [CERT]).replace(
        'use="signing"', 'use="encryption"'
    )
    assert read_metadata(xml).certificates == ()


XXE = """<?xml version="1.0"?>
<!DOCTYPE md [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&xxe;"/>"""
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n' for n in range(1, 10)
    )
    + ']>\n<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&lol9;"/>'
)
EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE md:EntityDescriptor SYSTEM "http://127.0.0.1:9/evil.dtd">
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/x"/>"""


@pytest.mark.parametrize("xml", [XXE, LAUGHS, EXTERNAL_DTD], ids=["xxe", "billion-laughs", "external-dtd"])
def test_dtds_entities_and_external_references_are_refused_as_bad_input(xml: str) -> None:
    with pytest.raises(BadInput, match="may not declare a DTD"):
        read_metadata(xml)


@pytest.mark.parametrize(
    ("xml", "why"),
    [
        ("not xml at all", "not well-formed"),
        ("<a><b></a>", "not well-formed"),
        ('<md:SPSSODescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>', "not SAML 2.0 metadata"),
        (
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>',
            "IDPSSODescriptor",
        ),
    ],
)
def test_what_is_not_an_idps_metadata_is_invalid(xml: str, why: str) -> None:
    with pytest.raises(Invalid, match=why):
        read_metadata(xml)
