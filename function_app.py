"""Warden's Azure Functions app (Python v2 programming model): one Blueprint per area.

Kept import-light on purpose: cold start is paid on every new instance, so heavy SDKs (msgraph-sdk,
azure-identity, storage) are imported by ``shared`` on first use, not here.
"""

import azure.functions as func

from functions import admin, audit, directories, groups, hris, imports, reconcile, scim, sync, timers, users

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (
    admin.bp,
    directories.bp,
    users.bp,
    groups.bp,
    audit.bp,
    sync.bp,
    reconcile.bp,
    hris.bp,
    timers.bp,
    imports.bp,
    scim.bp,
):
    app.register_functions(blueprint)
