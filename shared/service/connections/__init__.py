"""Connections to M365 tenants (rule 18): consent, the token refresh timer, lapses and what waits on them."""
