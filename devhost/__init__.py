"""The local Azure Functions host: runs function_app.py without Core Tools or .NET.

`python -m devhost [--script PATH] [--host H] [--port N] [--with-azurite]` serves
the app's HTTP routes, polls its queue triggers and scans its blob triggers, honouring
host.json and local.settings.json the way the Functions host does (see host.py).
"""
