"""emotion.core.threads: one object per thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from emotion.core.threads import per_thread


def test_each_thread_builds_its_own_once():
    built: list[object] = []

    @per_thread
    def thing() -> object:
        built.append(obj := object())
        return obj

    mine = thing()
    assert thing() is mine and len(built) == 1  # kept in this thread
    with ThreadPoolExecutor(1) as pool:
        theirs = pool.submit(lambda: (thing(), thing())).result()
    assert theirs[0] is theirs[1] and theirs[0] is not mine and len(built) == 2
    assert thing.__name__ == "thing"
