"""Resource usage of this process and its machine: readings in plain Python, and the
OpenTelemetry gauges that publish them through the API only."""

# Memory figures are MB of 2**20 bytes, the unit Azure uses for instance memory sizes.
MB = 1024 * 1024
