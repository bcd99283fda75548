"""Microsoft Graph v1.0 on the wire: the URL table, the resource handlers, paging and errors, ``$batch``."""
