"""Paired tests between face variants of one ``preproc compare --task face`` run.

Reads the run's ``report.json`` (dataset, task options, limit) and ``cache.jsonl`` (every
recognition), rebuilds the same pairs, and for each size compares variant A against
variant B on the *same* pairs:

* per-pair correctness under the 10-fold protocol (each fold's threshold chosen on the
  other nine, as the report's accuracy): McNemar's exact test on the discordant pairs;
* a paired bootstrap (resampling pairs, 2000 draws) of the accuracy and AUC differences:
  the 95 % interval.

Variants known here: cached candidates (``none``, ``bicubic``, ``face-sr``, ``default``...)
and ``fuse:X/Y`` (the mean of X's and Y's normalised embeddings and their flips)::

    python benchmarks/face_paired.py runs/fsr-eval-lfw --a face-sr --b bicubic
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np


def _embeddings(cache: Path) -> dict[tuple, dict]:
    out = {}
    with open(cache) as f:
        for line in f:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if obj.get("rec") is not None:
                out[tuple(obj["key"])] = obj["rec"]
    return out


def _vector(recs: dict, rid: str, size: int, jpeg, variant: str) -> np.ndarray | None:
    from preproc.recognize.face import fuse_embeddings

    if variant.startswith("fuse:"):
        embs = []
        for c in variant.split(":", 1)[1].split("/"):
            r = recs.get((rid, size, jpeg, c))
            if r:
                embs += [np.asarray(e, np.float32) for e in (r.get("embedding"), r.get("flip_embedding")) if e]
        return fuse_embeddings(embs)
    r = recs.get((rid, size, jpeg, variant))
    if not r or r.get("embedding") is None:
        return None
    return np.asarray(r["embedding"], np.float32)


def fold_correct(scores: np.ndarray, labels: np.ndarray, folds: int = 10) -> np.ndarray:
    """Per-pair correctness (bool) with each fold's threshold chosen on the other folds."""
    from preproc.face_metrics import best_threshold, fold_ids

    ids = fold_ids(labels, folds)
    ok = np.zeros(labels.size, dtype=bool)
    for k in range(folds):
        test = ids == k
        if test.any():
            t, _ = best_threshold(scores[~test], labels[~test])
            ok[test] = (scores[test] >= t) == labels[test]
    return ok


def mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare_variants(run: Path, a: str, b: str, draws: int = 2000, seed: int = 0) -> list[dict]:
    """One dict per (size, jpeg): accuracy of A and B, McNemar, bootstrap intervals."""
    from preproc.compare.face import FaceTask
    from preproc.face_metrics import apply_failures, roc_auc

    rep = json.loads((run / "report.json").read_text())
    st = rep["settings"]
    opts = dict(st.get("task_options") or {})
    task = FaceTask(**opts)
    task.load(Path(st["dataset"]), st.get("limit"))
    pairs = task._pairs
    labels = np.array([p.same for p in pairs], dtype=bool)
    recs = _embeddings(run / "cache.jsonl")
    settings = sorted({(r["size"], r["jpeg"]) for r in rep["rows"]}, key=lambda t: (t[0], str(t[1])))
    rng = np.random.default_rng(seed)
    out = []
    for size, jpeg in settings:
        scores = {}
        for v in (a, b):
            s = np.full(len(pairs), np.nan)
            for k, p in enumerate(pairs):
                ea, eb = _vector(recs, p.a, size, jpeg, v), _vector(recs, p.b, size, jpeg, v)
                if ea is not None and eb is not None:
                    s[k] = float(np.dot(ea, eb))
            if np.isnan(s).all():
                break
            scores[v] = apply_failures(s, labels, np.isnan(s))
        if len(scores) < 2:
            continue
        ok_a, ok_b = fold_correct(scores[a], labels), fold_correct(scores[b], labels)
        n_b = int((ok_a & ~ok_b).sum())
        n_c = int((~ok_a & ok_b).sum())
        idx = rng.integers(0, len(pairs), (draws, len(pairs)))
        dacc = ok_a[idx].mean(1) - ok_b[idx].mean(1)
        dauc = []
        for row in idx[:500]:
            y = labels[row]
            if y.all() or not y.any():
                continue
            dauc.append(roc_auc(scores[a][row], y) - roc_auc(scores[b][row], y))
        out.append({
            "size": size, "jpeg": jpeg, "pairs": len(pairs),
            f"acc_{a}": round(float(ok_a.mean()), 4), f"acc_{b}": round(float(ok_b.mean()), 4),
            "acc_diff": round(float(ok_a.mean() - ok_b.mean()), 4),
            "acc_diff_ci95": [round(float(np.percentile(dacc, 2.5)), 4), round(float(np.percentile(dacc, 97.5)), 4)],
            "acc_diff_se": round(float(dacc.std()), 4),
            "a_only_right": n_b, "b_only_right": n_c, "mcnemar_p": round(mcnemar_p(n_b, n_c), 4),
            f"auc_{a}": round(roc_auc(scores[a], labels), 4), f"auc_{b}": round(roc_auc(scores[b], labels), 4),
            "auc_diff_ci95": [round(float(np.percentile(dauc, 2.5)), 4), round(float(np.percentile(dauc, 97.5)), 4)],
        })
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="output folder of a preproc compare --task face run")
    p.add_argument("--a", required=True, help="variant A (e.g. face-sr, fuse:face-sr/bicubic)")
    p.add_argument("--b", default="bicubic", help="variant B (default bicubic)")
    p.add_argument("--draws", type=int, default=2000)
    args = p.parse_args(argv)
    rows = compare_variants(args.run, args.a, args.b, args.draws)
    for r in rows:
        print(json.dumps(r))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
