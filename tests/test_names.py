"""Canonical model keys, families and sizes: synthetic cases for each rule, then the real corpus's names."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lens.names import (
    MODERN_FAMILIES,
    NUM_SIZE_BUCKETS,
    SIZE_EDGES_B,
    UNKNOWN_FAMILY,
    ModelNames,
    family_of,
    normalise_name,
    parse_size,
    size_bucket,
    size_buckets,
)


@dataclass(frozen=True)
class RealNames:
    record_names: list[str]
    all_names: list[str]  # record names + models.csv.gz names
    hf_ids: dict[str, str]
    architectures: dict[str, str]
    names: ModelNames


@pytest.fixture(scope="module")
def real(real_corpus_dir: Path) -> RealNames:
    """Every model name of the shared corpus, with the hub ids and architectures models.csv.gz gives them."""
    records = pd.concat(
        pd.read_csv(path, usecols=["model"]).drop_duplicates() for path in sorted(real_corpus_dir.glob("records/*"))
    )
    models = pd.read_csv(real_corpus_dir / "models.csv.gz", usecols=["model", "hf_id", "architecture"])
    record_names = sorted(set(records["model"]))
    all_names = sorted(set(record_names) | set(models["model"]))
    with_hf = models.dropna(subset=["hf_id"])
    with_arch = models.dropna(subset=["architecture"])
    hf_ids = dict(zip(with_hf["model"], with_hf["hf_id"], strict=True))
    return RealNames(
        record_names=record_names,
        all_names=all_names,
        hf_ids=hf_ids,
        architectures=dict(zip(with_arch["model"], with_arch["architecture"], strict=True)),
        names=ModelNames.build(all_names, hf_ids),
    )


# ----------------------------------------------------------------------------------------------------------------------
# normalise_name
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("01-ai/Yi-34B", "01-ai/yi-34b"),
        ("  Claude 3   Opus ", "claude-3-opus"),
        ("yi_34b_chat", "yi-34b-chat"),
        ("meta-llama/Llama-2-7b-chat-hf", "meta-llama/llama-2-7b-chat"),
        ("Llama_2_7b_HF", "llama-2-7b"),
        ("openai/gpt-4.1 [Scicode Zero Shot Agent]", "openai/gpt-4.1-[scicode-zero-shot-agent]"),
        ("openai/gpt-oss-20b#high", "openai/gpt-oss-20b#high"),
    ],
)
def test_normalise_name(raw, expected):
    assert normalise_name(raw) == expected


@pytest.mark.parametrize(
    ("base", "variant"),
    [
        ("mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.1"),
        ("Qwen/Qwen1.5-7B", "Qwen/Qwen1.5-7B-Chat"),
        ("google/gemma-7b", "google/gemma-7b-it"),
        ("openai/gpt-4.1", "openai/gpt-4.1 [Scicode Zero Shot Agent]"),
    ],
)
def test_normalise_name_keeps_variants_and_scaffolds_apart(base, variant):
    assert normalise_name(base) != normalise_name(variant)


# ----------------------------------------------------------------------------------------------------------------------
# ModelNames: one rule per test, on small synthetic name sets
# ----------------------------------------------------------------------------------------------------------------------


def test_org_names_differing_in_case_share_a_key():
    names = ModelNames.build(["01-ai/yi-34b", "01-ai/Yi-34B"])
    assert names.key("01-ai/yi-34b") == names.key("01-ai/Yi-34B") == "01-ai/yi-34b"


def test_two_orgs_never_merge():
    names = ModelNames.build(["shadowml/DareBeagle-7B", "flemmingmiguel/DareBeagle-7B"])
    assert names.key("shadowml/DareBeagle-7B") != names.key("flemmingmiguel/DareBeagle-7B")


def test_bare_name_joins_the_only_org_with_that_repo():
    names = ModelNames.build(["EleutherAI/pythia-1.4b", "pythia-1.4b"])
    assert names.key("pythia-1.4b") == names.key("EleutherAI/pythia-1.4b") == "eleutherai/pythia-1.4b"


def test_bare_name_shared_by_two_orgs_stays_its_own_key():
    names = ModelNames.build(["doas/test2", "alnrg2arg/test2"])
    assert names.key("test2") == "test2"


def test_bare_name_follows_its_hub_id():
    names = ModelNames.build(["qwq-32b"], hf_ids={"qwq-32b": "Qwen/QwQ-32B"})
    assert names.key("qwq-32b") == "qwen/qwq-32b"


def test_hub_id_naming_another_variant_is_not_followed():
    names = ModelNames.build(
        ["CodeLlama-70B-instruct"], hf_ids={"CodeLlama-70B-instruct": "codellama/CodeLlama-70b-hf"}
    )
    assert names.key("CodeLlama-70B-instruct") == "codellama-70b-instruct"


def test_hub_id_of_an_org_prefixed_name_is_ignored():
    agent = "openai/gpt-oss-120b [CORE-Agent]"
    names = ModelNames.build([agent, "openai/gpt-oss-120b"], hf_ids={agent: "openai/gpt-oss-120b"})
    assert names.key(agent) != names.key("openai/gpt-oss-120b")


def test_bare_name_with_conflicting_hub_ids_stays_its_own_key():
    hf_ids = {"Vicuna-13B": "lmsys/vicuna-13b-v1.5", "vicuna-13b": "lmsys/vicuna-13b-delta-v1.1"}
    names = ModelNames.build(["eachadea/vicuna-13b", *hf_ids], hf_ids=hf_ids)
    assert names.key("Vicuna-13B") == names.key("vicuna-13b") == "vicuna-13b"


def test_hub_id_claimed_by_names_of_different_sizes_is_not_followed():
    hf_ids = {"rwkv_4_raven_14b": "BlinkDL/rwkv-4-raven", "rwkv_4_raven_7b": "BlinkDL/rwkv-4-raven"}
    names = ModelNames.build(list(hf_ids), hf_ids=hf_ids)
    assert names.keys(hf_ids) == ["rwkv-4-raven-14b", "rwkv-4-raven-7b"]


def test_vendor_release_name_does_not_join_a_fine_tune_that_reused_it():
    hf_ids = {"Llama-3-8B-Instruct": "AI-Sweden-Models/Llama-3-8B-instruct"}
    names = ModelNames.build(["AI-Sweden-Models/Llama-3-8B-instruct", "Llama-3-8B-Instruct"], hf_ids=hf_ids)
    assert names.key("Llama-3-8B-Instruct") == "llama-3-8b-instruct"


def test_vendor_release_name_joins_the_vendor():
    names = ModelNames.build(["meta-llama/Llama-2-7b-chat-hf", "Llama-2-7B-chat"])
    assert names.key("Llama-2-7B-chat") == "meta-llama/llama-2-7b-chat"


def test_fine_tune_display_name_joins_its_publisher():
    names = ModelNames.build(["lxuechen/phi-2-dpo", "phi-2-dpo"])
    assert names.key("phi-2-dpo") == "lxuechen/phi-2-dpo"


def test_single_generic_word_is_not_joined_by_repo_name():
    names = ModelNames.build(["pansophic/nmt", "NMT"])
    assert names.key("NMT") == "nmt"


def test_unseen_names_get_keys_by_the_same_rules():
    names = ModelNames.build(["EleutherAI/pythia-1.4b", "shadowml/DareBeagle-7B", "flemmingmiguel/DareBeagle-7B"])
    assert names.keys(["Pythia_1.4B", "DareBeagle-7B", "new-org/Brand-New-7B"]) == [
        "eleutherai/pythia-1.4b",
        "darebeagle-7b",
        "new-org/brand-new-7b",
    ]


def test_keys_keep_input_order():
    names = ModelNames.build(["EleutherAI/pythia-1.4b", "pythia-1.4b", "gpt2"])
    assert names.keys(["gpt2", "pythia-1.4b", "gpt2"]) == ["gpt2", "eleutherai/pythia-1.4b", "gpt2"]


def test_missing_hub_ids_are_no_links():
    names = ModelNames.build(["EleutherAI/pythia-1.4b"], hf_ids={"pythia-1.4b": float("nan")})
    assert names.key("pythia-1.4b") == "eleutherai/pythia-1.4b"


# ----------------------------------------------------------------------------------------------------------------------
# ModelNames on the real corpus
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "group",
    [
        ("01-ai/yi-34b", "01-ai/Yi-34B", "Yi-34B", "yi_34b"),
        ("qwq-32b", "QwQ-32B", "Qwen/QwQ-32B"),
        ("EleutherAI/pythia-1.4b", "pythia-1.4b"),
        ("meta-llama/Llama-2-70b-chat-hf", "Llama-2-70b-chat-hf", "LLaMA-2-70B-Chat", "llama_2_70b_chat"),
        ("anthropic/claude-3-opus-20240229", "claude-3-opus-20240229", "Claude-3-Opus-20240229"),
        ("stabilityai/stablelm-2-zephyr-1_6b", "stablelm-2-zephyr-1_6b"),
    ],
)
def test_real_spellings_of_one_model_share_a_key(real, group):
    assert all(name in real.all_names for name in group)
    assert len(set(real.names.keys(group))) == 1


@pytest.mark.parametrize(
    "names",
    [
        ("shadowml/DareBeagle-7B", "flemmingmiguel/DareBeagle-7B"),
        ("doas/test2", "alnrg2arg/test2"),
        ("mistralai/Mixtral-8x22B-v0.1", "mistral-community/Mixtral-8x22B-v0.1"),
        ("openai/gpt-4.1", "openai/gpt-4.1 [Scicode Zero Shot Agent]"),
        ("openai/gpt-oss-20b", "openai/gpt-oss-20b#high"),
        ("Llama-3-8B-Instruct", "AI-Sweden-Models/Llama-3-8B-instruct"),
        ("NMT", "pansophic/nmt"),
    ],
)
def test_real_distinct_models_keep_distinct_keys(real, names):
    assert all(name in real.all_names for name in names)
    assert len(set(real.names.keys(names))) == len(names)


def test_real_bare_name_shared_by_two_orgs_stays_its_own_key(real):
    assert real.names.key("DareBeagle-7B") == "darebeagle-7b"


def test_real_org_names_share_a_key_only_when_they_differ_by_case_separators_or_hf(real):
    """No two org-prefixed raw names that differ by more than case, `_`/`-`/spaces and a `-hf` suffix share a key."""

    def skeleton(raw: str) -> str:
        return re.sub(r"[\s_-]", "", raw.lower()).removesuffix("hf")

    skeletons: dict[str, set[str]] = defaultdict(set)
    for raw in real.all_names:
        if "/" in raw:
            skeletons[real.names.key(raw)].add(skeleton(raw))
    assert {key: found for key, found in skeletons.items() if len(found) > 1} == {}


def test_real_keys_never_merge_two_orgs(real):
    orgs: dict[str, set[str]] = defaultdict(set)
    for raw in real.all_names:
        if "/" in raw:
            orgs[real.names.key(raw)].add(raw.split("/")[0].lower())
    assert {key: found for key, found in orgs.items() if len(found) > 1} == {}


def test_real_names_collapse_into_fewer_keys(real):
    keys = set(real.names.keys(real.all_names))
    assert len(real.all_names) - len(keys) > 500


@pytest.mark.parametrize(
    ("name", "family"),
    [
        # Spec 1.9's mislabels, fixed.
        ("openai/clip-vit-base-patch32", "clip"),
        ("google/flan-t5-xl", "t5"),
        ("xlm-roberta-large", "xlm-roberta"),
        ("sentence-transformers/all-MiniLM-L6-v2", "minilm"),
        ("BAAI/bge-large-en-v1.5", "bge"),
        # Spec 1.9's correct cases, kept.
        ("Llama-3.1-8B-Instruct", "llama"),
        ("DeepSeek-R1-Distill-Qwen-14B", "deepseek"),
        ("microsoft/wavlm-base", "wavlm"),
        ("roberta-large", "roberta"),
        ("CamemBERT", "camembert"),
    ],
)
def test_family_of_spec_cases(name, family):
    assert family_of(name) == family


def test_optimus_is_not_opt():
    assert family_of("Optimus-7B") != "opt"


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", "qwen"),
        ("Qwen/QwQ-32B", "qwen"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "llama"),
        ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "llama"),
        ("mistralai/Mistral-7B-Instruct-v0.2", "mistral"),
        ("mistralai/Ministral-8B-Instruct-2410", "mistral"),
        ("google/gemma-2-9b-it", "gemma"),
        ("microsoft/Phi-3-mini-4k-instruct", "phi"),
        ("phi_1_5", "phi"),
        ("deepseek-ai/deepseek-llm-67b-chat", "deepseek"),
        ("01-ai/Yi-1.5-34B-Chat", "yi"),
        ("yi_34b", "yi"),
        ("tiiuae/falcon-40b-instruct", "falcon"),
        ("ibm-granite/granite-3.0-8b-instruct", "granite"),
        ("CohereForAI/aya-expanse-8b", "aya"),
        ("allenai/OLMoE-1B-7B-0924-Instruct", "olmo"),
        ("HuggingFaceH4/zephyr-7b-beta", "zephyr"),
        ("upstage/SOLAR-10.7B-Instruct-v1.0", "solar"),
    ],
)
def test_modern_families_are_recognised(name, family):
    assert family in MODERN_FAMILIES
    assert family_of(name) == family


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("cognitivecomputations/dolphin-2.9-llama3-8b", "llama"),  # `phi` inside `dolphin`
        ("EpistemeAI2/Fireball-Alpaca-Llama3.1-8B-Philos", "llama"),  # `phi` starting `Philos`
        ("Phind/Phind-CodeLlama-34B-v2", "llama"),  # `phi` starting `Phind`
        ("SciPhi/SciPhi-Mistral-7B-32k", "mistral"),  # `phi` ending `SciPhi`
        ("Classical/Yinka", UNKNOWN_FAMILY),  # `yi` starting a word
        ("timm/mobilenetv4_conv_medium.e500_r224_in1k", "mobilenet"),  # `e5` starting `e500`
        ("nbeerbower/llama-3-stella-8B", "llama"),  # an embedder's name inside an LLM fine-tune's
        ("TempNet-LLaMA2-Chat-13B-v0.1", "llama"),  # `mpnet` inside `TempNet`
        ("openai-community/gpt2", "gpt"),
    ],
)
def test_family_of_avoids_substring_traps(name, family):
    assert family_of(name) == family


def test_org_never_decides_the_family():
    assert family_of("mistralai/some-new-model") == UNKNOWN_FAMILY


def test_timm_pretraining_tag_does_not_decide_the_family():
    assert family_of("timm/regnety_160.deit_in1k") == "regnet"


def test_openclip_models_are_clip():
    assert family_of("open_clip:convnext_base_w/laion2b_s13b_b82k") == "clip"


@pytest.mark.parametrize(
    ("architecture", "family"),
    [
        ("Qwen2ForCausalLM", "qwen"),
        ("LlamaForCausalLM", "llama"),
        ("MistralForCausalLM", "mistral"),
        ("Gemma2ForCausalLM", "gemma"),
        ("GPTNeoXForCausalLM", "gpt"),
        ("CohereForCausalLM", "command"),
        ("PhiMultipleHeadsForCasualLM", "phi"),
        ("L;l;a;m;a;F;o;r;C;a;u;s;a;l;L;M", "llama"),
        ("resnet", "resnet"),
        ("vision_transformer", "vit"),
        ("swin_transformer_v2", "swin"),
        ("maxxvit", "maxxvit"),
        ("ViT-B-32", "vit"),
        ("", UNKNOWN_FAMILY),
        (None, UNKNOWN_FAMILY),
        (float("nan"), UNKNOWN_FAMILY),
    ],
)
def test_family_falls_back_to_the_architecture(architecture, family):
    assert family_of("Supichi/BBAI_275_Tsunami_gZ", architecture) == family


def test_name_beats_architecture():
    assert family_of("Xiaojian9992024/Phi-4-Megatron-Empathetic", "LlamaForCausalLM") == "phi"


def test_real_families_are_lower_case(real):
    families = {family_of(name, real.architectures.get(name)) for name in real.record_names}
    assert all(family == family.lower() for family in families)


def test_real_family_coverage(real):
    """Measured 87.8% of record names (55.9% from the name alone); most misses are Papers-with-Code method names."""
    families = [family_of(name, real.architectures.get(name)) for name in real.record_names]
    assert np.mean([family != UNKNOWN_FAMILY for family in families]) > 0.85


# ----------------------------------------------------------------------------------------------------------------------
# parse_size and size buckets
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("7b", 7e9),
        ("mistralai/Mistral-7B-v0.1", 7e9),
        ("EleutherAI/gpt-neo-1.3B", 1.3e9),
        ("facebook/opt-350m", 350e6),
        ("gpt-neo-125m", 125e6),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 56e9),
        ("Qwen/Qwen1.5-MoE-A2.7B", 2.7e9),
        ("Qwen/Qwen3-235B-A22B", 235e9),
        ("llama-2-13b-chat", 13e9),
        ("01-ai/Yi-34B-200K", 34e9),
        ("stabilityai/stablelm-2-1_6b", 1.6e9),
        ("llama_2_7b", 7e9),
        ("bigscience/bloom-7b1", 7.1e9),
        ("cloudyu/Yi-34Bx2-MoE-60B", 60e9),
        ("BAAI/Infinity-Instruct-3M-0625-Llama3-70B", 70e9),
        ("TheBloke/Llama-2-7B-GPTQ-4bit", 7e9),
    ],
)
def test_parse_size(name, size):
    assert parse_size(name) == pytest.approx(size)


@pytest.mark.parametrize(
    "name",
    [
        "claude-3-opus-20240229",  # a date
        "BAAI/bge-large-en-v1.5",  # a version
        "gpt-4-32k",  # a context length
        "timm/vit_base_patch32_224.augreg_in21k",  # a patch size and a resolution
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",  # samples seen, not parameters
        "open_clip:ViT-B-32/laion2b_s34b_b79k",
        "Glove.840B",  # tokens
        "gemma-3n-e4b-it",
        "model-0b",  # never 0
        "BERT (single model)",
    ],
)
def test_parse_size_is_none_when_no_size_is_named(name):
    assert parse_size(name) is None


def test_size_edges_and_bucket_count():
    assert len(SIZE_EDGES_B) == 21
    assert NUM_SIZE_BUCKETS == 23


@pytest.mark.parametrize(
    ("n_params", "bucket"),
    [
        (None, 0),
        (float("nan"), 0),
        (0.0, 0),
        (-5.0, 0),
        (float("inf"), 0),
        (5e5, 1),  # below 1M
        (1e6, 2),  # an edge belongs to the bucket above it
        (1.3e9, 15),
        (7e9, 17),
        (13e9, 17),
        (70e9, 20),
        (2e12, 22),  # above 1T
    ],
)
def test_size_bucket(n_params, bucket):
    assert size_bucket(n_params) == bucket


def test_size_buckets_match_size_bucket():
    sizes = np.array([np.nan, 5e5, 1e6, 3.5e8, 7e9, 1.2e11, 5e12])
    assert size_buckets(sizes).tolist() == [size_bucket(size) for size in sizes]


def test_size_buckets_cover_every_id():
    sizes = np.concatenate([[np.nan], np.asarray(SIZE_EDGES_B) * 1e9, [1e5]])
    assert set(size_buckets(sizes).tolist()) == set(range(NUM_SIZE_BUCKETS))
