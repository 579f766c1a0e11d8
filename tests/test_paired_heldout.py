"""bench/paired_heldout.py: the four counts and the exact McNemar p of two scorings."""

import json
import subprocess
import sys
from math import comb

import pytest
from conftest import REPO_ROOT, bench_module


paired = bench_module("paired_heldout")
compare, mcnemar_exact = paired.compare, paired.mcnemar_exact


def test_the_exact_p_is_the_two_sided_binomial_tail():
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 2 ** 10)
    assert mcnemar_exact(3, 7) == pytest.approx(2 * sum(comb(10, k) for k in range(4)) / 2 ** 10)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_problems_right_for_both_do_not_count_as_evidence():
    first = {"problems": 100, "greedy_right": list(range(20))}
    second = {"problems": 100, "greedy_right": list(range(2, 24))}  # 2 lost, 4 gained
    result = compare(first, second)
    assert (result["both"], result["only_first"], result["only_second"], result["neither"]) == (18, 2, 4, 76)
    assert result["difference_points"] == 2.0
    assert result["p_two_sided"] == pytest.approx(mcnemar_exact(2, 4), abs=1e-4)


def test_scorings_of_different_sets_or_without_the_lists_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="same held-out set"):
        compare({"problems": 512, "greedy_right": []}, {"problems": 256, "greedy_right": []})
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"problems": 512, "correct_greedy": 0.2}))
    done = subprocess.run([sys.executable, "bench/paired_heldout.py", str(old), str(old)], capture_output=True,
                          text=True, cwd=REPO_ROOT)
    assert done.returncode != 0 and "rescore it" in done.stderr
