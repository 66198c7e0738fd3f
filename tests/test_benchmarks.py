import pytest

from lens.benchmarks import benchmark_family


@pytest.mark.parametrize(
    "names",
    [
        # The same benchmark in four sources and suites, with shot settings, translations and versions.
        [
            "MMLU (5-shot)",
            "HELM Classic: MMLU",
            "MixEval: MixEval_MMLU-Hard",
            "mmlu_fr",
            "HELM MMLU: Business Ethics",
            "Global-MMLU-Lite: Global MMLU Lite",
            "MMLU-PRO",
        ],
        # LiveBench releases of one task.
        ["LiveBench-2024-06-24/AMPS_Hard", "LiveBench-2025-12-23/AMPS_Hard"],
        ["LiveBench-2024-06-24/web_of_lies_v2", "LiveBench-2025-04-25/web_of_lies_v3"],
        # MTEB translations and versions.
        ["ArguAna", "ArguAna-VN", "ArguAna-PL", "ArguAna-Fa.v2", "NanoArguAnaRetrieval"],
        ["AmazonCounterfactualClassification", "AmazonCounterfactualVNClassification"],
        ["FiQA2018", "FiQA2018-VN", "FiQA-PL"],
        ["HellaSwag (10-shot)", "HELM Classic: HellaSwag", "hellaswag", "OLMES: hellaswag"],
        ["ImageNet-1k (val)", "ImageNet v2", "ImageNet-Sketch", "Imagenet1k"],
        ["crossmodal3600 [de] (image retrieval)", "crossmodal3600 [tr] (text retrieval)"],
        ["HELM AIR-Bench: HELM_AIRBENCH_Deception", "HELM AIR-Bench: HELM_AIRBENCH_Privacy"],
    ],
)
def test_near_duplicate_names_share_a_family(names: list[str]):
    assert len({benchmark_family(n) for n in names}) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SQuAD2.0", "HotpotQA"),
        ("ArguAna", "SciFact"),
        ("LiveBench-2024-06-24/AMPS_Hard", "LiveBench-2024-06-24/typos"),
        ("AmazonCounterfactualClassification", "AmazonPolarityClassification"),
        ("GPQA", "IFEval"),
    ],
)
def test_distinct_benchmarks_stay_apart(a: str, b: str):
    assert benchmark_family(a) != benchmark_family(b)
