"""The development-set split into checkpoint-selection and report lines."""

from pathlib import Path

import pytest

from preproc.datasets import Record
from preproc.errors import ConfigError
from preproc.train.validate import select_split, split_dev_lines, split_group

DEV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "text-lines-dev"


def _records() -> list[Record]:
    recs = [Record(f"sroie-{r:03d}-{i}", Path("x.png"), {"source": "sroie", "text": "A"})
            for r in range(60) for i in range(4)]
    recs += [Record(f"uw3c-test-{i:06d}", Path("x.png"), {"source": "uw3-calamari", "text": "a"}) for i in range(30)]
    return recs


def test_split_is_deterministic_disjoint_complete_and_order_free():
    recs = _records()
    sel, rep = split_dev_lines(recs)
    assert {r.id for r in sel}.isdisjoint({r.id for r in rep})
    assert len(sel) + len(rep) == len(recs)
    sel2, rep2 = split_dev_lines(list(reversed(recs)))
    assert {r.id for r in sel2} == {r.id for r in sel} and {r.id for r in rep2} == {r.id for r in rep}
    # every source is split about 1:2, and a receipt never lands on both sides
    for source in ("sroie", "uw3-calamari"):
        n_sel = sum(r.get("source") == source for r in sel)
        n_all = sum(r.get("source") == source for r in recs)
        assert abs(n_sel / n_all - 1 / 3) < 0.05
    assert {split_group(r.id) for r in sel}.isdisjoint({split_group(r.id) for r in rep})
    assert split_group("sroie-012-7") == "sroie-012" and split_group("uw3c-test-010001") == "uw3c-test-010001"


def test_select_split_names():
    recs = _records()
    assert len(select_split(recs, "all")) == len(recs) == len(select_split(recs, None))
    assert select_split(recs, "report") == split_dev_lines(recs)[1]
    with pytest.raises(ConfigError, match="'held-out'"):
        select_split(recs, "held-out")


@pytest.mark.shared
@pytest.mark.skipif(not DEV.is_dir(), reason="shared development set absent")
def test_split_of_the_development_set():
    from preproc.datasets import read_manifest

    sel, rep = split_dev_lines(read_manifest(DEV))
    assert (len(sel), len(rep)) == (291, 590)
