"""Indexing checks the Python worker makes on a v2 app, reproduced by the local host's loader
(azure-functions-python-worker azure_functions_worker/functions.py ``add_indexed_function``,
``validate_function_params``, ``get_function_return_type``). In Azure a failed check stops the
whole app from indexing, so the local host refuses to start instead of running it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tools.funchost.loader import FunctionSpec, LoadError, load_functions

pytestmark = pytest.mark.unit


def load(tmp_path: Path, body: str) -> list[FunctionSpec]:
    header = "import typing\nimport azure.functions as func\napp = func.FunctionApp()\n\n"
    (tmp_path / "function_app.py").write_text(header + textwrap.dedent(body))
    return list(load_functions(tmp_path, environ={}))


@pytest.mark.parametrize(
    "annotation",
    ["-> None", "-> dict", "-> typing.Any", "-> typing.Optional[func.HttpResponse]"],
)
def test_http_return_annotation_must_be_httpresponse_or_str(tmp_path: Path, annotation: str) -> None:
    """``check_output_type_annotation`` of the "http" binding: subclass of HttpResponse or str;
    a non-class annotation is "invalid non-type return annotation"."""
    with pytest.raises(LoadError, match="return annotation"):
        load(tmp_path, f"@app.route()\ndef f(req: func.HttpRequest) {annotation}:\n    pass\n")


@pytest.mark.parametrize("annotation", ["func.HttpResponse", "str", ""])
def test_valid_http_return_annotations_load(tmp_path: Path, annotation: str) -> None:
    arrow = f" -> {annotation}" if annotation else ""
    assert load(tmp_path, f"@app.route()\ndef f(req: func.HttpRequest){arrow}:\n    return 'x'\n")


def test_trigger_annotation_must_match_the_trigger(tmp_path: Path) -> None:
    """A queue trigger annotated ``func.HttpRequest`` fails QueueMessageInConverter's check."""
    with pytest.raises(LoadError, match='does not match its Python annotation "HttpRequest"'):
        load(
            tmp_path,
            """
            @app.queue_trigger(arg_name="msg", queue_name="items", connection="AzureWebJobsStorage")
            def f(msg: func.HttpRequest) -> None:
                pass
            """,
        )


def test_str_annotated_queue_trigger_loads_as_text(tmp_path: Path) -> None:
    """``str``/``bytes`` select the worker's generic binding."""
    (spec,) = load(
        tmp_path,
        """
        @app.queue_trigger(arg_name="msg", queue_name="items", connection="AzureWebJobsStorage")
        def f(msg: str) -> None:
            pass
        """,
    )
    assert spec.trigger_as_text is True


def test_context_annotation_must_be_context(tmp_path: Path) -> None:
    """``is_context_required``: a ``context`` annotation must be a class named Context."""
    with pytest.raises(LoadError, match='"context" parameter'):
        load(tmp_path, "@app.route()\ndef f(req: func.HttpRequest, context: dict) -> str:\n    return ''\n")


def test_timer_sub_minute_schedules_are_not_monitored(tmp_path: Path) -> None:
    """TimerSchedule.Create (azure-webjobs-sdk-extensions): more than one occurrence in the next
    minute, or a TimeSpan under a minute, turns UseMonitor off; useMonitor=false does too."""
    specs = load(
        tmp_path,
        """
        @app.timer_trigger(schedule="*/30 * * * * *", arg_name="t")
        def every30s(t: func.TimerRequest) -> None:
            pass

        @app.timer_trigger(schedule="0 */5 * * * *", arg_name="t")
        def every5m(t: func.TimerRequest) -> None:
            pass

        @app.timer_trigger(schedule="00:00:30", arg_name="t")
        def span30s(t: func.TimerRequest) -> None:
            pass

        @app.timer_trigger(schedule="0 0 * * * *", arg_name="t", use_monitor=False)
        def unmonitored(t: func.TimerRequest) -> None:
            pass
        """,
    )
    monitored = {s.name: s.use_monitor for s in specs}
    assert monitored == {"every30s": False, "every5m": True, "span30s": False, "unmonitored": False}
