"""Hartonomous Functions: the services behind the Azure Functions triggers.

Nothing in this package imports ``azure.functions`` except ``shared.api`` (the
blueprints), so services stay testable and reusable outside the Functions runtime.
This package is what Azure runs: it imports with ``requirements.txt`` alone. The local
host (``devhost``), tests and benchmarks live outside it.
"""
