"""Hartonomous Functions: the services behind the Azure Functions triggers.

One folder per feature (``vectors``, ``jobs``, ``registry``, ``inference``, ``search``,
``embeddings``, ``analytics``, ``monitoring``, ``health``), each with its routes, shapes,
service and storage; beside them the infrastructure every feature uses (``http``, ``db``,
``storage``, ``settings``, ``errors``, ``telemetry``). Only the routes and the HTTP kit
import ``azure.functions``, so services stay usable outside the Functions runtime. This package
is what Azure runs: it imports with ``requirements.txt`` alone. The local host
(``devhost``), tests and benchmarks live outside it.
"""
