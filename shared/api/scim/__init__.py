"""The SCIM 2.0 service provider's HTTP contract (RFC 7643/7644), on scim2-models: the schemas a source publishes,
what a SCIM payload means in Warden's fields and back, filters, PATCH, Bulk, ETags and SCIM errors.

Imported only when a SCIM request arrives (scim2-models costs about a second to import: no cold start of the
other functions pays it)."""
