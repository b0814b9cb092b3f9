"""The journal: records survive reopening, torn last lines are cut, fingerprints decide what is done."""

from __future__ import annotations

import json
import threading

from preproc.journal import Journal, settings_fingerprint


def test_fingerprint_is_stable_and_order_free():
    a = settings_fingerprint({"task": "ocr", "scale": None, "overrides": {"tile": 64, "overlap": 8}})
    b = settings_fingerprint({"overrides": {"overlap": 8, "tile": 64}, "scale": None, "task": "ocr"})
    assert a == b and len(a) == 16
    assert a != settings_fingerprint({"task": "ocr", "scale": 2, "overrides": {"tile": 64, "overlap": 8}})


def test_records_survive_reopening_and_fingerprints_separate(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path, "fp1") as j:
        j.record("a", {"ok": True, "n": 1})
        j.record("b", {"ok": False, "error": "bad"})
        j.record("a", {"ok": True, "n": 2})  # a later record of the same key wins
    j = Journal(path, "fp1")
    assert j.is_done("a") and j.is_done("b") and not j.is_done("c")
    assert j.get("a")["n"] == 2
    assert [r["key"] for r in j.records()] == ["b", "a"]
    other = Journal(path, "fp2")
    assert not other.is_done("a") and len(other) == 0
    assert len(other.records()) == 2 and other.records(current_only=True) == []
    other.record("a", {"ok": True})
    assert Journal(path, "fp1").get("a")["n"] == 2  # fp1's record of a is still there
    assert Journal(path, "fp2").records(current_only=True)[0]["fingerprint"] == "fp2"


def test_torn_last_line_is_ignored_and_cut(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    with Journal(path, "fp") as j:
        j.record("a", {"ok": True})
        j.record("b", {"ok": True})
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 7])  # the second line loses its end, newline included
    j = Journal(path, "fp")
    assert j.is_done("a") and not j.is_done("b") and j.torn_lines == 1
    assert "torn" in caplog.text
    assert path.read_bytes() == whole[: whole.index(b"\n") + 1]  # cut back to the last whole line
    j.record("b", {"ok": True})
    j.close()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["a", "b"]


def test_garbage_lines_are_skipped_not_fatal(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"key": "a", "fingerprint": "fp"}\n[1, 2]\nnot json\n\xff\xfe\n{"no_key": 1}\n')
    j = Journal(path, "fp")
    assert j.is_done("a") and len(j) == 1 and j.torn_lines == 4


def test_concurrent_records_are_whole_lines(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path, "fp", fsync=False)

    def work(t: int) -> None:
        for i in range(200):
            j.record(f"{t}-{i}", {"ok": True, "pad": "x" * (i * 37 % 5000)})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    j.close()
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()]
    assert sorted(keys) == sorted(f"{t}-{i}" for t in range(4) for i in range(200))
    assert len(Journal(path, "fp")) == 800


def test_keep_holds_only_the_named_fields_and_records_reads_the_file(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path, "fp1") as j:
        j.record("a", {"ok": True, "big": "x" * 1000, "n": 1})
        j.record("b", {"ok": False, "error": "bad"})
    j = Journal(path, "fp2", keep=("ok",))
    j.record("a", {"ok": True, "big": "y", "n": 2})
    assert j.is_done("a") and not j.is_done("b")
    assert j.get("a") == {"key": "a", "fingerprint": "fp2", "ok": True}  # only what was asked for, in memory
    recs = j.records()  # whole records, from the file, the latest per key
    assert [(r["key"], r["fingerprint"], r.get("n")) for r in recs] == [("b", "fp1", None), ("a", "fp2", 2)]
    assert recs[1]["big"] == "y"
    assert [r["key"] for r in j.records(current_only=True)] == ["a"]
    j.close()


def test_record_many_appends_every_line(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path, "fp") as j:
        j.record_many([("a", {"ok": True}), ("b", {"ok": False})])
        j.record_many([])
    assert [json.loads(x)["key"] for x in path.read_text().splitlines()] == ["a", "b"]
    assert Journal(path, "fp").is_done("b")
