"""SAML 2.0 IdP metadata with a fresh self-signed signing certificate, for trying federation locally (the README's
single sign-on walkthrough) and for the tests: what an IdP such as JumpCloud exports (``Export Metadata``).

    python -m tools.samlmeta --domain sso.contoso.example > federation.json         # a PUT …/federation body
    python -m tools.samlmeta --domain sso.contoso.example --xml > idp-metadata.xml  # the metadata alone

The private key is thrown away: nothing here signs a SAML response, it only shows Entra (and Warden's checks) a
real certificate. ``--days`` sets how long the certificate is valid, ``--rollover`` adds a second, newer one (the
next signing certificate).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from xml.sax.saxutils import quoteattr

from tools.selfsigned import self_signed


def certificate(common_name: str, *, days: int = 365, not_before_days: int = -1) -> str:
    """A self-signed RSA certificate, base64 DER (what metadata's ds:X509Certificate holds)."""
    return base64.b64encode(self_signed(common_name, days=days, not_before_days=not_before_days).der).decode()


def _key(der: str) -> str:
    wrapped = "\n".join(der[i : i + 64] for i in range(0, len(der), 64))
    return (
        '    <md:KeyDescriptor use="signing">\n'
        '      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">\n'
        f"        <ds:X509Data><ds:X509Certificate>\n{wrapped}\n        </ds:X509Certificate></ds:X509Data>\n"
        "      </ds:KeyInfo>\n"
        "    </md:KeyDescriptor>\n"
    )


def metadata(
    entity_id: str,
    sign_in: str,
    certificates: list[str],
    *,
    sign_out: str | None = None,
) -> str:
    """An IdP's metadata document: its entity id, signing certificates (base64 DER), sign-in and sign-out URLs."""
    keys = "".join(_key(c) for c in certificates)
    logout = (
        f'    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f"Location={quoteattr(sign_out)}/>\n"
        if sign_out
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID={quoteattr(entity_id)}>\n'
        '  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">\n'
        f"{keys}{logout}"
        "    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>\n"
        '    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f"Location={quoteattr(sign_in)}/>\n"
        '    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        f"Location={quoteattr(sign_in)}/>\n"
        "  </md:IDPSSODescriptor>\n"
        "</md:EntityDescriptor>\n"
    )


def for_domain(domain: str, *, days: int = 365, rollover: bool = False, idp: str = "idp.example") -> str:
    """Metadata as an IdP exports it for ``domain`` (JumpCloud-style: the domain in the entity id and sign-in URL)."""
    certs = [certificate(f"{idp} signing", days=days)]
    if rollover:
        certs.append(certificate(f"{idp} signing (next)", days=days + 365, not_before_days=0))
    return metadata(
        f"https://{idp}/saml2/{domain}",
        f"https://{idp}/saml2/{domain}/sso",
        certs,
        sign_out=f"https://{idp}/saml2/{domain}/logout",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.samlmeta", description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain", required=True, help="the domain to federate")
    parser.add_argument("--idp", default="idp.example", help="the IdP's host name (default idp.example)")
    parser.add_argument("--days", type=int, default=365, help="days the certificate is valid (default 365)")
    parser.add_argument("--rollover", action="store_true", help="add a newer certificate (the next one)")
    parser.add_argument("--xml", action="store_true", help="print the metadata alone, not a PUT body")
    args = parser.parse_args(argv)
    xml = for_domain(args.domain, days=args.days, rollover=args.rollover, idp=args.idp)
    sys.stdout.write(xml if args.xml else json.dumps({"metadataXml": xml}) + "\n")


if __name__ == "__main__":
    main()
