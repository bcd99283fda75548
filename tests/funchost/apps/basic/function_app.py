"""Fixture app for the local functions host's tests (test data, not Warden code).

Evidence of timer and queue invocations is appended, one JSON object per line, to the file named by
the EVIDENCE_FILE environment variable.
"""

import asyncio
import json
import os
import threading
import time

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


def record(kind: str, **data: object) -> None:
    with open(os.environ["EVIDENCE_FILE"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": kind, "t": time.time(), **data}) + "\n")


@app.route(route="items/{id:int}", methods=["GET"])
def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"id": req.route_params["id"], "thread": threading.current_thread().name}),
        mimetype="application/json",
    )


@app.route(route="items/{name:alpha}", methods=["GET"])
def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"name={req.route_params['name']}")


@app.route(route="docs/{section}/{page?}", methods=["GET"])
async def docs(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")


@app.route(route="files/{*path}", methods=["GET", "PUT"])
async def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(
            {
                "path": req.route_params.get("path"),
                "method": req.method,
                "size": len(req.get_body()),
                "query": dict(req.params),
            }
        ),
        status_code=201 if req.method == "PUT" else 200,
        mimetype="application/json",
        headers={"X-Custom": "yes"},
    )


@app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> str:
    return req.get_body().decode("utf-8")


@app.route(route="boom")
async def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("kaboom")


@app.route(route="cookies")
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    resp = func.HttpResponse("ok", status_code=418)
    resp.headers.add("Set-Cookie", "a=1")
    resp.headers.add("Set-Cookie", "b=2")
    return resp


@app.route(route="ctx")
def ctx(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"invocation_id": context.invocation_id, "function_name": context.function_name}),
        mimetype="application/json",
    )


@app.route()
def defaultroute(req: func.HttpRequest) -> str:
    return "default route is the function name"


@app.route(route="returns-none")
def returns_none(req: func.HttpRequest):  # type: ignore[no-untyped-def]
    # No return annotation: `-> None` would fail the worker's indexing (see test_loader.py).
    record("returns-none")


@app.route(route="returns-dict")
def returns_dict(req: func.HttpRequest):  # type: ignore[no-untyped-def]
    return {"not": "an HttpResponse"}


@app.route(route="query")
def query(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(dict(req.params)), mimetype="application/json")


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    record("tick", past_due=timer.past_due, status=timer.schedule_status)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
def yearly(timer: func.TimerRequest) -> None:
    record("yearly", past_due=timer.past_due, status=timer.schedule_status)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
async def overlap(timer: func.TimerRequest) -> None:
    # Runs 1.5 s at start-up; a manual run started meanwhile must not wait for it.
    record("overlap-start")
    await asyncio.sleep(1.5)
    record("overlap-end")


@app.timer_trigger(schedule="* * * * * *", arg_name="timer", run_on_startup=False)
async def slow(timer: func.TimerRequest) -> None:
    # Every second, but each run takes 2.5 s: runs must never overlap.
    record("slow-start")
    await asyncio.sleep(2.5)
    record("slow-end")


@bp.queue_trigger(arg_name="msg", queue_name="work-items", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    body = msg.get_body().decode("utf-8")
    record("work", id=msg.id, body=body, dequeue_count=msg.dequeue_count)
    if body.startswith("fail"):
        raise ValueError(f"cannot process {body}")


@app.queue_trigger(arg_name="msg", queue_name="returns-value", connection="AzureWebJobsStorage")
def returns_value(msg: func.QueueMessage):  # type: ignore[no-untyped-def]
    record("returns-value", body=msg.get_body().decode("utf-8"), dequeue_count=msg.dequeue_count)
    return "done"


@app.queue_trigger(arg_name="msg", queue_name="text-items", connection="AzureWebJobsStorage")
def text_items(msg: str) -> None:
    record("text", type=type(msg).__name__, body=msg)


app.register_functions(bp)
