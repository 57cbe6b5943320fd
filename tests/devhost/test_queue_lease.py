"""The queue lease: short, renewed while the message waits or runs, on a real Azurite.

A received message is invisible for LOCAL_QUEUE_LEASE_SECONDS and the host renews that
lease every third of it, keeping each renewal's new pop receipt. So a message whose
receive reply never reached the host is back after about one lease, a message whose
invocation outlasts many leases is never handed out twice (and its delete, made with the
latest receipt, really removes it), and a renewal that fails while storage is out of
reach is tried again without losing the lease.
"""

from __future__ import annotations

import time

import pytest
from azure.storage.queue import QueueClient

from devhost.azurite import connection_string
from tests.support.host import (
    FIXTURE_APP,
    PLAIN_APP,
    Host,
    b64,
    start_fixture_app,
    stop_host,
    unb64,
    wait_for,
)
from tests.support.proxy import CuttableProxy, ReplyDroppingProxy

pytestmark = pytest.mark.e2e


def _direct(azurite, host: Host, name: str) -> QueueClient:
    """The test's own client for `<ns>-<name>`, straight to Azurite (never proxied)."""
    return QueueClient.from_connection_string(azurite.connection_string, f"{host.ns}-{name}")


def _held_until(queue: QueueClient, done, timeout: float, what: str) -> None:
    """Wait for done(), checking all along that the message stays invisible in `queue`:
    a lease that lapsed would hand it to any other receiver (this test's peek included)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert queue.peek_messages() == [], f"the lease lapsed while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def _stopped_cleanly(host: Host) -> str:
    code = stop_host(host)
    log = host.log()
    assert code == 0, log
    return log


def test_message_whose_receive_reply_was_lost_comes_back_after_the_lease(azurite, tmp_path) -> None:
    lease = 3
    proxy = ReplyDroppingProxy(azurite.queue_port)
    proxied = connection_string(azurite.blob_port, proxy.port, azurite.table_port)
    host = start_fixture_app(
        FIXTURE_APP, proxied, tmp_path, {"LOCAL_QUEUE_LEASE_SECONDS": str(lease)}
    )
    try:
        jobs, results = _direct(azurite, host, "jobs"), _direct(azurite, host, "results")
        proxy.arm()
        jobs.send_message(b64("lost once"))
        assert proxy.dropped.wait(10), "the host never received the message"
        # Storage leased it to a receive whose reply is gone: invisible, not deleted.
        assert jobs.peek_messages() == []
        assert jobs.get_queue_properties().approximate_message_count == 1

        wait_for(
            lambda: jobs.peek_messages() or results.peek_messages(),
            timeout=lease + 3,
            interval=0.1,
            what=f"the message to come back after its {lease} s lease",
        )
        hidden = time.monotonic() - proxy.dropped_at
        assert hidden >= lease - 1, f"visible again after {hidden:.1f} s, before its lease ended"

        # The host runs it once the SDK retries the broken receive (after 18 +-3 s): once,
        # as the message's second dequeue (the first was the lost receive).
        wait_for(lambda: results.peek_messages(max_messages=5), timeout=40, what="the run")
        time.sleep(lease + 1)  # a second delivery would show up within a lease
        outputs = results.peek_messages(max_messages=5)
        assert len(outputs) == 1, [unb64(m.content) for m in outputs]
        assert '"dequeue_count": 2' in unb64(outputs[0].content)
        assert jobs.get_queue_properties().approximate_message_count == 0
    finally:
        log = _stopped_cleanly(host)
        proxy.close()
    assert "deleting message" not in log


def test_invocation_longer_than_many_leases_runs_once_and_its_message_is_deleted(
    azurite, tmp_path
) -> None:
    lease, runs_for = 2, 5.0  # renewed every 0.7 s, six times or so
    host = start_fixture_app(
        PLAIN_APP,
        azurite.connection_string,
        tmp_path,
        {"LOCAL_QUEUE_LEASE_SECONDS": str(lease), "DEVHOST_SLOW_SECONDS": str(runs_for)},
        "",
    )
    try:
        slow, done = _direct(azurite, host, "slow"), _direct(azurite, host, "slow-done")
        slow.send_message("long")
        wait_for(lambda: host.records("slow"), what="the invocation to start")
        # batchSize 1, newBatchThreshold 1: the host's poller keeps receiving while it
        # runs, so a lease that lapsed would also hand the message to it again.
        _held_until(slow, done.peek_messages, runs_for + 10, "the output")
        # Deleted with the receipt of the last renewal: gone, not back after a lease.
        assert slow.get_queue_properties().approximate_message_count == 0
        time.sleep(lease + 1)
        assert slow.get_queue_properties().approximate_message_count == 0
        assert host.records("slow") == [
            {"event": "start", "body": "long"},
            {"event": "end", "body": "long"},
        ]
    finally:
        log = _stopped_cleanly(host)
    assert "deleting message" not in log
    assert "no longer held" not in log
    assert log.count("Executed 'Functions.slow' (Succeeded") == 1


def test_failed_renewals_while_storage_is_cut_keep_the_lease(azurite, tmp_path) -> None:
    # Renewed every 3 s, retried every 0.75 s after a failure: the lease was last renewed
    # at most 3 s before the cut, which lasts until a renewal failed (at most 3 s), so it
    # has at least 2 s left when the first retry after the cut succeeds. The invocation
    # outlasts the lease it was received with by a few seconds.
    lease, runs_for = 9, 13.0
    proxy = CuttableProxy(azurite.queue_port)
    proxied = connection_string(azurite.blob_port, proxy.port, azurite.table_port)
    host = start_fixture_app(
        PLAIN_APP,
        proxied,
        tmp_path,
        {"LOCAL_QUEUE_LEASE_SECONDS": str(lease), "DEVHOST_SLOW_SECONDS": str(runs_for)},
        "",
    )
    try:
        slow, done = _direct(azurite, host, "slow"), _direct(azurite, host, "slow-done")
        slow.send_message("through the cut")
        wait_for(lambda: host.records("slow"), what="the invocation to start")
        started_at = time.monotonic()
        _held_until(slow, lambda: time.monotonic() > started_at + 2, 5, "the cut")
        proxy.cut()
        _held_until(
            slow, lambda: "renewing the lease" in host.log(), lease / 3 + 1, "a failed renewal"
        )
        proxy.restore()
        _held_until(slow, done.peek_messages, runs_for + 10, "the output")
        assert slow.get_queue_properties().approximate_message_count == 0
        assert host.records("slow") == [
            {"event": "start", "body": "through the cut"},
            {"event": "end", "body": "through the cut"},
        ]
    finally:
        log = _stopped_cleanly(host)
        proxy.close()
    assert "deleting message" not in log
    assert log.count("Executed 'Functions.slow' (Succeeded") == 1
