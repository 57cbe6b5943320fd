"""`python -m reliability`: load, ingestion accounting, memory and the fault and hostile-input
suites against the real app on the local host, summed up in one table. Never deployed."""
