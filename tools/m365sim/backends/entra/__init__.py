"""Entra ID: signing keys, tokens, client authentication, the authorize endpoint's sign-in and consents."""
