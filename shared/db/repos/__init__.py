"""Repositories: one per table family, all SQL parameterised, no azure.functions.

Import the module you need (``from shared.db.repos.jobs import JobRepository``). This
package imports none of its modules on purpose: a package ``__init__`` that imports its
own modules deadlocks when two threads import for the first time at once, one the
package (it then waits for a module), the other that module (it holds the module's
import lock and waits for the package). Python then raises ``_DeadlockError`` in one of
them. A cold instance's first invocations do exactly this (an upload, the blob trigger,
a queue job), and the loser answers 500.
"""
