"""Fixture app (test data): a queue output binding, which the local host must refuse at start-up."""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="ok")
def ok(req: func.HttpRequest) -> str:
    return "ok"


@app.route(route="enqueue")
@app.queue_output(arg_name="out", queue_name="outq", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> str:
    out.set("x")
    return "queued"
