"""The JSON of messages a worker keeps for the next reader (opengroup/api/v3/shapes.py)
stays within its bytes, dropping the oldest first; what it keeps is what it was given.
Which readers get the kept JSON, and that it is right for them, is held through the
real server by tests/test_v3_messages.py."""

from __future__ import annotations

import pytest

from opengroup.api.v3 import shapes


def test_the_kept_messages_stay_within_their_bytes_oldest_dropped_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shapes, "SHAPED_BYTES_KEPT", 100)
    kept = shapes._ShapedMessages()
    for n in range(10):
        kept.keep(("main", n, 1.0, n, 5, False), bytes([n]) * 30)
    found = {n: kept.get(("main", n, 1.0, n, 5, False)) for n in range(10)}

    assert [n for n, shaped in found.items() if shaped is not None] == [7, 8, 9]
    assert found[9] == bytes([9]) * 30
    assert kept.get(("main", 9, 1.0, 9, 0, False)) is None  # (another shape of the same message)


def test_a_message_over_the_whole_bound_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shapes, "SHAPED_BYTES_KEPT", 100)
    kept = shapes._ShapedMessages()
    kept.keep(("main", 1, 1.0, 1, 5, False), b"x" * 40)
    kept.keep(("main", 2, 1.0, 2, 5, False), b"y" * 101)

    assert kept.get(("main", 2, 1.0, 2, 5, False)) is None
    assert kept.get(("main", 1, 1.0, 1, 5, False)) == b"x" * 40
