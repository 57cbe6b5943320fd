"""Resource usage of this process and its machine (plan task 7.7): readings in plain
Python, and the OpenTelemetry gauges that publish them through the API only."""
