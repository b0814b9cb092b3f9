"""The page comparison task (issue 15): the line-order-invariant page metric, the task, the generator."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from preproc.compare import compare, create_task
from preproc.compare.page import _hungarian, align_lines, page_edits, page_scores
from preproc.errors import DatasetError

ROOT = Path(__file__).resolve().parents[1]
REF = "The quick brown fox\njumps over the lazy dog\nand runs away\n12.50 TOTAL"


def test_hungarian_matches_brute_force():
    rng = random.Random(0)
    for n in (1, 2, 3, 5, 6):
        for _ in range(5):
            cost = [[rng.randint(0, 20) for _ in range(n)] for _ in range(n)]
            col = _hungarian(cost)
            assert sorted(col) == list(range(n))
            best = min(sum(cost[i][p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
            assert sum(cost[i][col[i]] for i in range(n)) == best


def test_line_order_does_not_matter():
    lines = REF.split("\n")
    base = page_edits(REF, REF)
    assert base["char_edits"] == 0 and base["word_edits"] == 0
    for perm in itertools.permutations(lines):
        assert page_edits(REF, "\n".join(perm)) == base
    noisy = ["The quick brovn fox", "jumps over the lazy dog", "and runs awy", "12.50 TOTAL"]
    e = page_edits(REF, "\n".join(noisy))
    for perm in itertools.permutations(noisy):
        assert page_edits(REF, "\n".join(perm)) == e
    assert e["char_edits"] == 2 and e["word_edits"] == 2


def test_split_and_merged_lines_cost_nothing_more_than_their_characters():
    # one line read as two pieces (a wide gap), and in another order
    split = "jumps over\nthe lazy dog\nThe quick brown fox\n12.50 TOTAL\nand runs away"
    assert page_edits(REF, split)["char_edits"] == 0
    # two lines read as one
    merged = "The quick brown fox jumps over the lazy dog\nand runs away\n12.50 TOTAL"
    e = page_edits(REF, merged)
    assert e["char_edits"] == 0 and e["chars"] == page_edits(REF, REF)["chars"]


def test_missing_and_invented_lines_count_in_full():
    ref_chars = page_edits(REF, REF)["chars"]
    assert ref_chars == sum(len(x) for x in REF.split("\n"))
    e = page_edits(REF, "")
    assert e["char_edits"] == ref_chars and e["word_edits"] == e["words"] == 14
    e = page_edits(REF, REF + "\n~~ ;;")
    assert e["char_edits"] == 5  # an invented line: insertions
    assert page_edits("", "abc") == {"char_edits": 3, "chars": 0, "word_edits": 1, "words": 0}


def test_plain_cer_would_punish_the_order_the_page_metric_does_not():
    hyp = "\n".join(reversed(REF.split("\n")))
    plain = Levenshtein.distance(" ".join(REF.split()), " ".join(hyp.split()))
    assert plain > 20
    assert page_scores([REF], [hyp])["cer"] == 0.0


def test_page_scores_case_flags_and_micro_average():
    s = page_scores(["ABC\nDEF", "xyz"], ["abc\ndef", "xyq"], [False, True])
    assert s["cer"] == pytest.approx(1 / 9) and s["chars"] == 9
    assert s["word_acc"] == pytest.approx(1 - 1 / 3)
    pairs = align_lines("a b\nc", "c\na x")
    assert ("a b", "a x") in pairs and ("c", "c") in pairs


def _rendered_pages(tmp_path: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from test_page import render_page
    finally:
        sys.path.pop(0)

    root = tmp_path / "pages"
    (root / "images").mkdir(parents=True)
    rows = []
    for i, lines in enumerate([
        ["The quick brown fox jumps over", "seven lazy dogs near the river"],
        ["Printed pages hold many words", "Numbers like 2048 and 31 matter", "and a third line here"],
    ]):
        img, _ = render_page(22, lines=lines, width=480)
        img.save(root / "images" / f"p{i}.png")
        rows.append({"id": f"p{i}", "image": f"images/p{i}.png", "text": "\n".join(lines), "body_line_height": 26})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_page_task_end_to_end(tmp_path):
    root = _rendered_pages(tmp_path)
    rep = compare(root, task="page", variants=["none", "page-bicubic"], sizes=[10, 26], out=tmp_path / "out",
                  progress=False)
    rows = {(r["variant"], r["size"]): r for r in rep.rows}
    assert all(r["n"] == 2 and r["failures"] == 0 for r in rows.values())
    assert rows[("none", 26)]["cer"] < 0.1  # full size: read almost perfectly
    assert rows[("page-bicubic", 26)]["cer"] < 0.1
    assert 0.0 <= rows[("page-bicubic", 10)]["cer"] < 1.0
    assert (tmp_path / "out" / "report.json").is_file()


def test_page_task_degrades_by_the_body_line_height(tmp_path):
    root = _rendered_pages(tmp_path)
    tk = create_task("page")
    rec = tk.load(root, None)[0]
    full = Image.open(rec.image)
    low = tk.degrade(rec, 13, None)
    assert low.size == (round(full.width / 2), round(full.height / 2))
    assert tk.degrade(rec, 13, 75).size == low.size
    tk.close()


def test_page_task_rejects_a_manifest_without_line_height(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    Image.new("L", (20, 20), 255).save(root / "a.png")
    (root / "manifest.jsonl").write_text(json.dumps({"id": "a", "image": "a.png", "text": "x"}) + "\n")
    tk = create_task("page")
    with pytest.raises(DatasetError, match="body_line_height"):
        tk.load(root, None)
    tk.close()


@pytest.mark.shared
def test_make_page_set_builds_pages_from_real_lines(shared_datasets, tmp_path):
    out = tmp_path / "pages"
    subprocess.run([sys.executable, str(ROOT / "datasets" / "make_page_set.py"), "--src",
                    str(shared_datasets / "text-lines-dev"), "--out", str(out), "--pages", "3", "--seed", "1"],
                   check=True, capture_output=True)
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for r in rows:
        img = Image.open(out / r["image"])
        assert img.size == (r["width"], r["height"])
        assert r["text"] == "\n".join(ln["text"] for ln in r["lines"])
        for ln in r["lines"]:
            x0, y0, x1, y1 = ln["box"]
            assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
        boxes = sorted(ln["box"] for ln in r["lines"])
        for a, b in zip(boxes, boxes[1:]):  # lines do not overlap
            assert a[3] <= b[1] or b[3] <= a[1] or a[2] <= b[0]
