"""Benchmark families: which dataset names are the same benchmark in another guise.

A held-out dataset only tests cold start if nothing of its benchmark stays in training. The same benchmark appears as
`MMLU (5-shot)`, `HELM Classic: MMLU`, `MixEval: MixEval_MMLU-Hard` and `mmlu_fr`; as `LiveBench-2024-06-24/AMPS_Hard`
in every LiveBench release; as `ArguAna`, `ArguAna-VN` and `ArguAna-PL` in MTEB. `benchmark_family` maps each name to a
key with suite prefixes, releases, shot settings, versions, difficulty tiers, languages and task-type suffixes removed;
`benchmark_families` then unites names that share a key or a cross-source anchor benchmark.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Suite prefixes that wrap a benchmark name ("HELM Classic: MMLU", "LiveBench-2024-06-24/AMPS_Hard").
_SUITE_PREFIX = re.compile(r"^(?:[^:/]{1,40}:\s+|livebench-\d{4}-\d{2}-\d{2}/)", re.IGNORECASE)
_BRACKETS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+(?:\.\d+)*")
_SPLITTER = re.compile(r"[\s_\-/:,.+&]+")

# ISO 639-1/3 codes and common translation markers used as name suffixes by MTEB, EuroEval and crossmodal3600.
_LANGUAGES = frozenset(
    "af am ar as az be bg bn bs ca cs cy da de el en es et eu fa fi fil fo fr ga gl gu ha he hi hr hu hy id ig is "
    "it ja jv ka kk km kn ko ky lb lo lt lv mi mk ml mn mr ms mt my nb ne nl nn no or pa pl ps pt ro ru rw sd si sk "
    "sl so sq sr su sv sw ta te tg th tl tr tt ug uk ur uz vi vn wo xh yo zh zu eng deu fra spa ita por rus zho jpn "
    "kor ara hin nld pol tur swe dan fin nor ces ell heb hun ron slk ukr vie ind tha fas zsm cmn yue".split()
)
# Words that change the setting, version or difficulty of a benchmark but not which benchmark it is.
_NOISE = frozenset(
    "classification retrieval clustering reranking pairclassification bitextmining multilabelclassification "
    "summarization instructionretrieval instructionreranking any2anyretrieval zeroshot zero shot few fewshot "
    "hard pro lite mini nano multilingual translated translation v val test dev split subset s2s p2p short long form "
    "helm hal mixeval oc opencompass airbench_ the a of".split()
)
# Benchmarks that appear under several sources and suites: any name containing one as a token joins its family.
CROSS_SOURCE_ANCHORS = (
    "mmlu",
    "hellaswag",
    "winogrande",
    "truthfulqa",
    "gsm8k",
    "arc",
    "triviaqa",
    "drop",
    "boolq",
    "squad",
    "gpqa",
    "ifeval",
    "bbh",
    "humaneval",
    "mbpp",
    "naturalquestions",
    "commonsenseqa",
    "openbookqa",
    "imagenet",
    "cifar",
    "mnist",
    "librispeech",
    "tedlium",
    "gigaspeech",
    "earnings",
    "fleurs",
    "covost",
    "mls",
    "airbench",
    "wildbench",
    "alpacaeval",
    "mtbench",
    "agentbench",
    "hotpotqa",
    "record",
    "snli",
    "coqa",
    "xsum",
    "cnn",
    "wikiann",
    "scala",
    "winograd",
    "cqadupstack",
    "msmarco",
    "nfcorpus",
    "scifact",
    "fiqa",
    "arguana",
    "quora",
    "scidocs",
    "treccovid",
    "touche2020",
    "climatefever",
    "fever",
    "dbpedia",
    "nq",
    "banking77",
    "massive",
)
_ANCHORS = frozenset(CROSS_SOURCE_ANCHORS)


def _tokens(text: str) -> list[str]:
    return [t.lower() for part in _SPLITTER.split(_BRACKETS.sub(" ", text)) for t in _CAMEL.findall(part)]


def _anchor(tokens: list[str]) -> str | None:
    """First anchor benchmark among the tokens or pairs of adjacent tokens (`Fi`+`QA` is FiQA)."""
    for i, token in enumerate(tokens):
        for candidate in (token, token + tokens[i + 1] if i + 1 < len(tokens) else ""):
            if candidate in _ANCHORS:
                return candidate
    return None


def _is_noise(token: str) -> bool:
    return (
        token in _NOISE
        or token in _LANGUAGES
        or re.fullmatch(r"v?\d+(?:\.\d+)*|\d+shot|\d+k", token) is not None
        or re.fullmatch(r"\d{4}|\d{8}", token) is not None
    )


def benchmark_family(dataset: str) -> str:
    """Key shared by names of one benchmark: `benchmark_family("MMLU (5-shot)") == benchmark_family("mmlu_fr")`."""
    anchor = _anchor(_tokens(dataset))  # the suite prefix counts here: "HELM MMLU: Business Ethics" is MMLU
    if anchor:
        return anchor
    tokens = _tokens(_SUITE_PREFIX.sub("", dataset.strip()))
    kept = [t for t in tokens if not _is_noise(t)]
    return "".join(kept or tokens) or dataset.strip().lower()


def benchmark_families(datasets: Iterable[str]) -> dict[str, str]:
    """Map each dataset name to its benchmark family key."""
    return {name: benchmark_family(name) for name in dict.fromkeys(datasets)}
