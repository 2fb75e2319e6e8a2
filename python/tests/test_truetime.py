"""The Python SDK against simulated sources and, when ``TRUETIME_TEST_PAGE`` names one, a
running timed's page (``.ci/run`` starts a lab for it)."""

import asyncio
import os
import threading
import time

import pytest

import truetime


def test_now_contains_the_host_clock():
    tt = truetime.TrueTime.simulated(epsilon_ns=50_000)
    before = time.time_ns()
    i = tt.now()
    after = time.time_ns()
    assert i.status == "synchronized"
    assert i.earliest_ns <= after and i.latest_ns >= before
    assert 49_000 <= i.epsilon_ns <= 51_000
    assert i.contains(i.midpoint_ns)
    assert not i.contains(i.latest_ns + 1)
    assert "epsilon_ns=" in repr(i)


def test_after_and_before():
    tt = truetime.TrueTime.simulated(epsilon_ns=1_000_000)
    now = time.time_ns()
    assert tt.after(now - 10_000_000)
    assert not tt.after(now)
    assert tt.before(now + 10_000_000)
    assert not tt.before(now)


def test_commit_wait_waits_until_after_holds():
    tt = truetime.TrueTime.simulated(epsilon_ns=2_000_000)
    s = tt.commit_timestamp()
    assert s >= tt.now().latest_ns - 10_000_000
    assert tt.commit_timestamp() > s
    waited = tt.commit_wait(s)
    assert tt.after(s)
    # ε = 2 ms: the wait is at least about 2ε minus the time spent getting here.
    assert waited >= 3_000_000


def test_commit_wait_releases_the_gil():
    tt = truetime.TrueTime.simulated(epsilon_ns=50_000_000)
    s = tt.commit_timestamp()
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    tt.commit_wait(s)  # about 100 ms
    stop.set()
    t.join()
    # The other thread ran during the wait: the GIL was released.
    assert len(ticks) > 20


def test_commit_wait_async():
    tt = truetime.TrueTime.simulated(epsilon_ns=5_000_000)

    async def main():
        s = tt.commit_timestamp()
        other = asyncio.create_task(asyncio.sleep(0.001, result="ran"))
        waited = await truetime.commit_wait_async(tt, s)
        return s, waited, await other

    s, waited, other = asyncio.run(main())
    assert other == "ran"
    assert waited > 0
    assert tt.after(s)


@pytest.mark.parametrize("status", ["unsynchronized", "disrupted"])
def test_an_untrustworthy_source_raises(status):
    tt = truetime.TrueTime.simulated(epsilon_ns=1_000, status=status)
    with pytest.raises(truetime.UntrustworthyError, match=status):
        tt.now()
    with pytest.raises(truetime.TrueTimeError):
        tt.commit_timestamp()


def test_holdover_is_trustworthy():
    assert truetime.TrueTime.simulated(1_000, "holdover").now().status == "holdover"


def test_a_missing_page_names_it(tmp_path):
    missing = tmp_path / "no-page"
    with pytest.raises(truetime.PageMissingError, match="no-page"):
        truetime.TrueTime(str(missing))
    with pytest.raises(truetime.TrueTimeError):
        truetime.TrueTime.simulated(1_000, "sideways")


def test_hlc_orders_and_refuses_a_far_remote():
    tt = truetime.TrueTime.simulated(epsilon_ns=1_000)
    hlc = truetime.Hlc(tt, max_offset_ns=500_000_000)
    a = hlc.now()
    b = hlc.now()
    assert b > a
    remote = (b[0] + 100_000_000, 7)
    c = hlc.update(remote)
    assert c > remote and c > b
    with pytest.raises(truetime.HlcRejectedError):
        hlc.update((time.time_ns() + 10_000_000_000, 0))
    assert hlc.now() > c


@pytest.mark.skipif(
    "TRUETIME_TEST_PAGE" not in os.environ, reason="no running timed (TRUETIME_TEST_PAGE)"
)
def test_a_running_timeds_page_contains_the_host_clock():
    tt = truetime.TrueTime(os.environ["TRUETIME_TEST_PAGE"])
    assert tt.source == "shm"
    deadline = time.monotonic() + 30
    while True:
        try:
            before = time.time_ns()
            i = tt.now()
            after = time.time_ns()
            break
        except truetime.UntrustworthyError:
            assert time.monotonic() < deadline, "timed never became trustworthy"
            time.sleep(0.2)
    assert i.earliest_ns <= after and i.latest_ns >= before
    assert i.epsilon_ns < 10_000_000
