"""A local Azure Functions host for the Python v2 programming model.

Azure Functions Core Tools cannot run here, so this package stands in for ``func start``: it loads
``function_app.py``, serves HTTP triggers, fires timer triggers and polls Storage queues (Azurite)
the way the Functions host does, so that what works here also works in Azure. It is an adapter only:
it contains no application logic. Run it with::

    python -m tools.funchost --script-root . --host 127.0.0.1 --port 7071
"""
