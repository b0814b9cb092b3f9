"""Paired CER comparison of two variants from compare caches."""

import json

import pytest

from preproc.errors import DatasetError
from preproc.train.paired import format_rows, main, paired_rows, read_cache


def _setup(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    lines = [{"id": f"l{i}", "image": f"images/l{i}.png", "text": "abcde"} for i in range(4)]
    (ds / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "cmp"
    out.mkdir()
    hyps = {"a": ["abcde", "abcde", "abcdx", "abcde"], "b": ["abxde", "xbcdx", "abcdx", "abcde"]}
    rows = [{"fp": "f", "key": [f"l{i}", 10, 75, v], "rec": {"text": hyps[v][i]}, "error": None, "seconds": 0.1}
            for v in hyps for i in range(4)]
    rows.append({"fp": "f", "key": ["l0", 10, 75, "c"], "rec": None, "error": "boom", "seconds": 0.1})
    (out / "cache.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
    return ds, out


def test_paired_difference_and_standard_error(tmp_path):
    ds, out = _setup(tmp_path)
    a, b = read_cache(out, "a"), read_cache(out, "b")
    assert len(a) == 4 and read_cache(out, "c") == {}
    (row,) = paired_rows(ds, a, b)
    # edits a: 0,0,1,0 ; b: 1,2,1,0 -> d = -1,-2,0,0 over 20 characters
    assert (row.n, row.cer_a, row.cer_b) == (4, 1 / 20, 4 / 20)
    assert row.diff == pytest.approx(-3 / 20)
    var = sum((x - (-0.75)) ** 2 for x in (-1, -2, 0, 0)) / 3
    assert row.se == pytest.approx((4 * var) ** 0.5 / 20)
    assert (row.a_better, row.b_better) == (2, 0)
    assert "-0.150" in format_rows([row], "a", "b")


def test_cli_and_missing_cache(tmp_path, capsys):
    ds, out = _setup(tmp_path)
    assert main([str(ds), f"{out}:a", f"{out}:b"]) == 0
    assert "| 10 | 75 | 4 |" in capsys.readouterr().out
    assert main(["only-one"]) == 2
    with pytest.raises(DatasetError, match="cache.jsonl"):
        read_cache(tmp_path / "nowhere", "a")


def test_a_finished_run_reads_only_its_own_fingerprint_and_a_mixed_unfinished_cache_is_refused(tmp_path):
    from preproc.compare.cache import FINGERPRINT_KEYS, fingerprint

    ds, out = _setup(tmp_path)
    settings = {"task": "ocr", "task_options": {"split": "all"}, "dataset": str(ds), "overrides": {}, "dtype": "None"}
    fp = fingerprint({k: settings[k] for k in FINGERPRINT_KEYS if k in settings})
    own = {"fp": fp, "key": ["l1", 10, 75, "a"], "rec": {"text": "own"}, "error": None, "seconds": 0.1}
    with open(out / "cache.jsonl", "a") as f:
        f.write("\n" + json.dumps(own) + "\n")
    with pytest.raises(DatasetError, match="2 different compare settings"):
        read_cache(out, "a")  # no report.json: "f" and fp are mixed
    (out / "report.json").write_text(json.dumps({"settings": settings, "rows": []}))
    assert read_cache(out, "a") == {("l1", 10, 75): "own"}  # the foreign "f" lines are not read
