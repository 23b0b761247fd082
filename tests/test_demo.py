from llark.demo import summary_table


def test_summary_table_shows_model_targets_ablation_and_baselines():
    metric = lambda v: {"value": v, "low": v - 0.1, "high": v + 0.05}  # noqa: E731
    results = {"tasks": {"key": {"n": 10, "unparseable": {"audio": 1},
                                 "systems": {"llark": {"mirex": metric(0.9)}, "llark, features shuffled": {"mirex": metric(0.2)},
                                             "majority": {"mirex": metric(0.15)}, "classic (librosa)": {"mirex": metric(0.8)}}}}}
    table = summary_table(results).splitlines()
    assert table[2] == "| key | mirex | 0.900 [0.800, 0.950] | ≥ 0.85 | 0.200 | 0.150 | 0.800 | 1/10 |"
