"""An IdP's SAML 2.0 metadata, read safely: ``defusedxml`` parses it with DTDs, entity declarations and external
references forbidden (XXE, "billion laughs", external DTDs are refused, never expanded or fetched), and
``cryptography`` reads its signing certificates.

What is read (docs.oasis-open.org/security/saml/v2.0/saml-metadata-2.0-os.pdf, §2.3-2.4): the ``EntityDescriptor``
(alone, or the one of an ``EntitiesDescriptor`` that has an ``IDPSSODescriptor``) and its ``entityID``; the
``IDPSSODescriptor``'s ``KeyDescriptor``s for signing (``use="signing"`` or no ``use``) with their
``ds:X509Certificate``; the first ``SingleSignOnService`` (HTTP-Redirect preferred, then HTTP-POST) and the first
``SingleLogoutService``. Microsoft's SAML IdP guide (entra/identity/hybrid/connect/how-to-connect-fed-saml-idp)
uses exactly these to federate a domain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from xml.etree.ElementTree import Element, ParseError

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from shared.domain.errors import BadInput, Invalid
from shared.domain.federation import Certificate, IdpMetadata

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDINGS = (REDIRECT, POST)


def _tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def certificate_of(der_base64: str) -> Certificate:
    """A certificate from base64 DER (whitespace inside is allowed, as metadata and PEM bodies wrap it);
    ``ValueError`` naming why it cannot be read."""
    compact = "".join(der_base64.split())
    try:
        der = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise ValueError("not a DER X.509 certificate") from None
    canonical = cert.public_bytes(Encoding.DER)
    return Certificate(
        der=base64.b64encode(canonical).decode(),
        subject=cert.subject.rfc4514_string() or "(no subject)",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        thumbprint=hashlib.sha1(canonical, usedforsecurity=False).hexdigest().upper(),
    )


def _root(xml: str) -> Element:
    try:
        root: Element = fromstring(
            xml.encode("utf-8"), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        kind = type(exc).__name__
        raise BadInput(
            f"metadataXml: refused unparsed ({kind}): metadata may not declare a DTD, entities or external "
            "references (XXE, entity expansion and external DTDs are never processed)",
            field="metadataXml",
        ) from None
    except ParseError as exc:
        raise Invalid(f"metadataXml: not well-formed XML ({exc})", field="metadataXml") from None
    return root


def _entity(root: Element) -> Element:
    if root.tag == _tag(MD, "EntityDescriptor"):
        return root
    if root.tag == _tag(MD, "EntitiesDescriptor"):
        for entity in root.iter(_tag(MD, "EntityDescriptor")):
            if entity.find(_tag(MD, "IDPSSODescriptor")) is not None:
                return entity
    raise Invalid(
        "metadataXml: not SAML 2.0 metadata of an IdP (an md:EntityDescriptor with an md:IDPSSODescriptor)",
        field="metadataXml",
    )


def read_metadata(xml: str) -> IdpMetadata:
    """The IdP's metadata. ``BadInput`` for a document declaring a DTD, entities or external references (never
    expanded or fetched); ``Invalid`` for anything that is not an IdP's SAML 2.0 metadata."""
    entity = _entity(_root(xml))
    entity_id = (entity.get("entityID") or "").strip()
    idp = entity.find(_tag(MD, "IDPSSODescriptor"))
    if idp is None or not entity_id:
        raise Invalid(
            "metadataXml: the EntityDescriptor needs an entityID and an IDPSSODescriptor", field="metadataXml"
        )
    certificates: list[Certificate] = []
    unreadable: list[str] = []
    for n, key in enumerate(idp.findall(_tag(MD, "KeyDescriptor")), 1):
        if key.get("use") not in (None, "signing"):
            continue
        for node in key.iter(_tag(DS, "X509Certificate")):
            try:
                certificates.append(certificate_of(node.text or ""))
            except ValueError as exc:
                unreadable.append(f"KeyDescriptor {n}: {exc}")
    return IdpMetadata(
        entity_id=entity_id,
        sign_in_uri=_service(idp, "SingleSignOnService"),
        sign_out_uri=_service(idp, "SingleLogoutService"),
        certificates=tuple(certificates),
        unreadable=tuple(unreadable),
    )


def _service(idp: Element, name: str) -> str | None:
    services = idp.findall(_tag(MD, name))
    for binding in BINDINGS:
        for s in services:
            if s.get("Binding") == binding and (s.get("Location") or "").strip():
                return (s.get("Location") or "").strip()
    return None
