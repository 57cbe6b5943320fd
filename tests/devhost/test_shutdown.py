"""SIGTERM mid-invocation: the running message finishes and is deleted, nothing is lost.

Uses the plain-text app (messageEncoding "none", batchSize 1, newBatchThreshold 1), so the
second message is received while the first runs and waits, not started, in the host.
"""

from __future__ import annotations

import signal

import pytest

from tests.support.host import PLAIN_APP, start_fixture_app, wait_for

pytestmark = pytest.mark.e2e


def test_sigterm_finishes_running_invocation_and_loses_nothing(azurite, tmp_path) -> None:
    host = start_fixture_app(
        PLAIN_APP, azurite.connection_string, tmp_path, {"DEVHOST_SLOW_SECONDS": "3"}, ""
    )
    try:
        assert host.call("GET", "/health").body == b"ok"  # empty routePrefix
        slow = host.queue("slow")
        slow.send_message("first")
        wait_for(lambda: host.records("slow"), what="the first invocation to start")
        slow.send_message("second")
        # the poller receives "second" (it turns invisible); the one worker is busy with "first"
        wait_for(lambda: not slow.peek_messages(max_messages=5), what="the poller to take second")

        host.process.send_signal(signal.SIGTERM)
        code = host.process.wait(20)
    finally:
        if host.process.poll() is None:
            host.process.kill()
    log = host.log()
    assert code == 0, log
    assert host.records("slow") == [
        {"event": "start", "body": "first"},
        {"event": "end", "body": "first"},
    ]
    assert "Executed 'Functions.slow' (Succeeded" in log
    assert "Host stopped" in log

    # the finished message wrote its output (plain text: messageEncoding none) and is gone
    assert [m.content for m in host.queue("slow-done").peek_messages(max_messages=5)] == ["first"]
    # the waiting one is back in the queue at once, visible, received exactly once
    waiting = slow.peek_messages(max_messages=5)
    assert [(m.content, m.dequeue_count) for m in waiting] == [("second", 1)]
    assert slow.get_queue_properties().approximate_message_count == 1
