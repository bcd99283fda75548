"""The admin console (``/api/console``): server-rendered pages for identity admins, signed in through Entra ID.

One HTTP function serves every page, form and static file of the console. Like the API's doors, it is
registered import-light (the standard library and ``azure.functions``): Jinja2, MSAL, the service layer and the
pages load with the console's first request (``functions.console.app``), never at the app's start.
"""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
ROUTE = "console/{*path}"


@bp.function_name("console")
@bp.route(route=ROUTE, methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def console(req: func.HttpRequest) -> func.HttpResponse:
    """The admin console (HTML; Entra ID sign-in, the admin API's app roles)."""
    from functions.console.app import serve

    return await serve(req)
