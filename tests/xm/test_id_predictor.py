"""id_predictor.Predictor: ids reserved from any thread, submissions in id order, a broken sequence."""

import asyncio
import threading

import pytest
from xmanager.xm import id_predictor


def test_ids_reserved_from_threads_are_unique_and_consecutive():
    predictor = id_predictor.Predictor(next_id=5)
    reserved = []
    lock = threading.Lock()

    def reserve():
        for _ in range(100):
            value = predictor.reserve_id()
            with lock:
                reserved.append(value)

    threads = [threading.Thread(target=reserve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(reserved) == list(range(5, 405))


def test_submissions_run_in_id_order_and_failure_breaks_later_ones():
    predictor = id_predictor.Predictor(next_id=1)
    ids = [predictor.reserve_id() for _ in range(4)]
    order = []

    async def submit(unit_id, fail=False):
        async with predictor.submit_id(unit_id):
            order.append(unit_id)
            if fail:
                raise RuntimeError("backend refused")

    async def main():
        return await asyncio.gather(
            submit(ids[2], fail=True), submit(ids[1]), submit(ids[3]), submit(ids[0]), return_exceptions=True
        )

    results = asyncio.run(main())
    assert order == [1, 2, 3]
    assert isinstance(results[0], RuntimeError)
    assert isinstance(results[2], id_predictor.BrokenSequenceError)
    with pytest.raises(id_predictor.BrokenSequenceError):

        async def late():
            async with predictor.submit_id(predictor.reserve_id()):
                pass

        asyncio.run(late())
