"""The files and the last line of a run whose seeds failed (experiments.reporting): a failed seed
never shows up as a score, and every mean ± std is over the seeds that finished."""

import csv
import json

from experiments import reporting


def results_with(failed_seeds, scores, status="finished"):
    """A results dict as lfjax.stages.agent makes it, seeds 3, 4, 5 over two evaluations."""
    good = [s for s in scores if s is not None]
    mean = sum(good) / len(good) if good else None
    return {
        "config": {"env": "maze2d-umaze", "algo": "latent_awac", "seeds": [3, 4, 5]},
        "status": status,
        "updates": 200,
        "final": {
            "scores": scores, "mean": mean, "std": 0.0 if good else None,
            "failed_seeds": failed_seeds,
            "failures": [{"seed": s, "within_updates": [100, 200]} for s in failed_seeds],
        },
        "members": [{"config": {}, "seed": s, "failed": s in failed_seeds} for s in (3, 4, 5)],
        "summary": [{"config": {}, "mean": mean, "std": 0.0 if good else None}],
        "baselines": {"random policy": 0.0},
        "curve": [
            {"updates": 100, "scores": [10.0, 20.0, 30.0], "mean": 20.0, "std": 8.2, "failed_seeds": [],
             "q_mean": 2.0, "diagnostics": {"q_mean": [1.0, 2.0, 3.0], "reached": [0.5, 1.0, 0.0]}},
            {"updates": 200, "scores": scores, "mean": mean, "std": 0.0 if good else None,
             "failed_seeds": failed_seeds, "q_mean": 4.0 if good else None,
             "diagnostics": {"q_mean": [None if v is None else 4.0 for v in scores],
                             "reached": [None if v is None else 1.0 for v in scores]}},
        ],
        "data": {"mc_return_mean": 7.5},
        "flow": {},
    }


def test_files_show_a_failed_seed_as_failed_not_as_a_score(tmp_path):
    reporting.write_outputs(tmp_path, results_with([4], [12.0, None, 14.0]))
    rows = list(csv.reader((tmp_path / "curve.csv").open()))
    assert rows[0] == ["updates", "mean", "std", "seed_3", "seed_4", "seed_5", "failed_seeds",
                       "q_mean", "data_mc_return", "q_mean_seed_3", "q_mean_seed_4", "q_mean_seed_5",
                       "reached_seed_3", "reached_seed_4", "reached_seed_5", "q_start_seed_3",
                       "q_start_seed_4", "q_start_seed_5", "return_start_seed_3",
                       "return_start_seed_4", "return_start_seed_5"]
    assert rows[1][3:15] == ["10.0", "20.0", "30.0", "", "2.0", "7.5", "1.0", "2.0", "3.0", "0.5", "1.0", "0.0"]
    # No score, Q or goal share for seed 4 once it failed.
    assert rows[2][:15] == ["200", "13.0", "0.0", "12.0", "", "14.0", "4", "4.0", "7.5", "4.0", "",
                            "4.0", "1.0", "", "1.0"]
    assert json.loads((tmp_path / "results.json").read_text())["final"]["scores"] == [12.0, None, 14.0]
    assert (tmp_path / "curve.png").stat().st_size > 0
    assert reporting.seeds_phrase(results_with([4], [12.0, None, 14.0])) == "2 of 3 seeds; seed 4 failed"


def test_last_line_counts_only_the_seeds_that_finished(tmp_path):
    (line,), status = reporting.final_lines(results_with([4], [12.0, None, 14.0]), tmp_path)
    assert status == 0
    assert "normalized score 13.0 ± 0.0 over 2 of 3 seeds; seed 4 failed" in line
    assert "seed 4 went non-finite within updates 100-200" in line


def test_every_seed_failed_is_no_score_and_status_1(tmp_path):
    results = results_with([3, 4, 5], [None, None, None], status="failed")
    (line,), status = reporting.final_lines(results, tmp_path)
    assert status == 1 and "every seed failed" in line and "normalized score" not in line
    reporting.write_outputs(tmp_path, results)  # None means and stds: gaps, not a crash
    rows = list(csv.reader((tmp_path / "curve.csv").open()))
    assert rows[2][:7] == ["200", "", "", "", "", "", "3 4 5"]
    assert rows[2][7:] == ["", "7.5"] + [""] * 12
