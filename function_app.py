"""Warden's Azure Functions app (Python v2 programming model): one Blueprint per area.

Every new instance imports this module and indexes its functions before it serves anything, so registering them
loads nothing a request needs: the HTTP operations are registered from the declarations of
``shared.api.operations`` (``functions.routes``: each door, with pydantic, the service layer and the SDKs, loads
with its first request), and the queue and timer triggers' modules import the standard library,
``azure.functions`` and ``shared.logs`` only, each function importing what it runs when it first runs.
``tests/unit/test_cold_start.py`` fails if importing and indexing the app loads more.

Adding an HTTP operation: a row in ``shared.api.operations`` and its door in ``functions/<tag>.py``. Adding a queue
or timer trigger: a function in an import-light Blueprint module listed here.
"""

import azure.functions as func

from functions import admin, console, jobs, notifications, routes, scim, sync, timers

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (admin.bp, routes.bp, sync.bp, jobs.bp, timers.bp, notifications.bp, scim.bp, console.bp):
    app.register_functions(blueprint)
