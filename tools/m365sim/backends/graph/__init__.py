"""Microsoft Graph's directory, one backend per resource family: users, groups and members, domains and
federation, organization, applications and credentials, role management, authentication methods, delta."""
