"""The streamed task-list parser: elements come out whole, whatever the chunk boundaries."""

import json

import pytest

from preannot.lsjson import iter_json_array

TASKS = [{"id": i, "data": {"text": "é \"quoted\" ] [ {" * i}, "annotations": []} for i in range(30)]


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_any_chunking_gives_the_same_elements(size):
    blob = json.dumps(TASKS, ensure_ascii=False).encode()
    chunks = [blob[i:i + size] for i in range(0, len(blob), size)]
    assert list(iter_json_array(chunks)) == TASKS


def test_empty_array_and_truncated_stream():
    assert list(iter_json_array([b" [ ] "])) == []
    with pytest.raises(ValueError, match="ended early"):
        list(iter_json_array([json.dumps(TASKS).encode()[:-40]]))
    with pytest.raises(ValueError, match="expected a JSON array"):
        list(iter_json_array([b'{"detail": "error"}']))
