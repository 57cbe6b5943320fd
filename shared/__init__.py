"""Hartonomous Functions: the services behind the Azure Functions triggers.

Nothing in this package imports ``azure.functions`` except ``shared.api`` (the
blueprints) and ``shared.devhost`` (the local host), so services stay testable
and reusable outside the Functions runtime.
"""
