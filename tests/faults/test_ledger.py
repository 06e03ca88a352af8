"""The ledger itself can fail: a lost, doubled or phantom update is reported."""

from __future__ import annotations

from collections import Counter

from tests.support.ledger import Ledger, StoreContents


def store(events: dict[tuple[str, str], int], totals: dict[str, int]) -> StoreContents:
    return StoreContents(totals, Counter(dict.fromkeys(events, 1)), events)


def ledger() -> Ledger:
    book = Ledger()
    book.record("a", "1", 5, "ok")
    book.record("a", "2", 3, "unknown")
    book.record("a", "3", 7, "failed")
    return book


def test_acknowledged_plus_some_unknown_is_clean() -> None:
    assert ledger().check(store({("a", "1"): 5}, {"a": 5})).clean
    verdict = ledger().check(store({("a", "1"): 5, ("a", "2"): 3}, {"a": 8}))
    assert verdict.clean
    assert verdict.unknown_applied == 1


def test_a_lost_acknowledgement_is_found() -> None:
    verdict = ledger().check(store({}, {"a": 0}))
    assert verdict.lost == 1
    assert not verdict.clean


def test_a_failed_update_in_the_store_is_a_phantom() -> None:
    verdict = ledger().check(store({("a", "1"): 5, ("a", "3"): 7}, {"a": 12}))
    assert verdict.phantoms == 1
    assert not verdict.clean


def test_a_total_counting_something_twice_is_found() -> None:
    verdict = ledger().check(store({("a", "1"): 5}, {"a": 10}))
    assert verdict.wrong_totals
    assert not verdict.clean
    doubled = StoreContents({"a": 10}, Counter({("a", "1"): 2}), {("a", "1"): 5})
    assert ledger().check(doubled).duplicates == 1
