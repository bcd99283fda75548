"""The admin's operations on the identity store: users, groups, directories, bindings, uniqueness, dates."""
