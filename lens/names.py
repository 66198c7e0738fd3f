"""Model names: canonical keys that join one model across leaderboards, model families, and sizes read from names.

Leaderboards name the same model differently (`01-ai/Yi-34B`, `01-ai/yi-34b`, `yi_34b`; `Llama-2-7b-chat-hf`,
`Llama-2-7b-chat`), and also give nearly identical names to different models (`shadowml/DareBeagle-7B` and
`flemmingmiguel/DareBeagle-7B`; `openai/gpt-4.1` and the agent `openai/gpt-4.1 [Scicode Zero Shot Agent]`). Keys here
join only what the evidence says is one model: a wrong merge pools two models' results and cannot be undone
downstream, while a missed join only costs some shared evidence. Families (spec 1.9, production mode) and size buckets
(spec 1.8) are the two structural features the ranker embeds; both say "unknown" rather than guess.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

UNKNOWN_FAMILY = "unknown"

# ----------------------------------------------------------------------------------------------------------------------
# Canonical keys
# ----------------------------------------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")
# A Hugging Face org: what makes `org/repo` a hub id rather than free text with a slash ("BERT w/ ...") or an
# OpenCLIP `open_clip:ARCH/pretrained` tag.
_HUB_ORG = re.compile(r"[a-z0-9][a-z0-9.-]*")
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
_WORDS_AND_NUMBERS = re.compile(r"[a-z]+|\d+")
# Words that make two otherwise equal names different models (or different servings of one): an hf_id that drops or
# adds one of them points at another model, e.g. `CodeLlama-70B-instruct` -> `codellama/CodeLlama-70b-hf`.
_VARIANT_WORDS = frozenset(
    {
        "instruct", "chat", "it", "base", "python", "code", "coder", "math", "sft", "dpo", "ppo", "rlhf", "kto",
        "orpo", "simpo", "expo", "turbo", "preview", "thinking", "reasoning", "vision", "vl", "mini", "small", "medium",
        "large", "lite", "moe", "distill", "reward", "rm", "awq", "gptq", "gguf", "concise", "verbose",
    }
)  # fmt: skip
# Words a vendor's own release name is made of, besides its family name, numbers and single letters. A bare name
# made only of these (`Llama-3-8B-Instruct`, `claude-3-opus`) names the vendor's release, so it may only join a hub
# id of that vendor, never a fine-tune that reused the name (`AI-Sweden-Models/Llama-3-8B-instruct`).
_RELEASE_WORDS = frozenset(
    {
        "meta", "instruct", "chat", "it", "base", "code", "coder", "math", "python", "vision", "vl", "preview", "exp",
        "latest", "turbo", "thinking", "reasoning", "mini", "nano", "small", "medium", "large", "xl", "lite", "pro",
        "plus", "max", "ultra", "flash", "opus", "sonnet", "haiku", "instant", "alpha", "beta", "moe", "omni",
    }
)  # fmt: skip
# Who publishes each family's own releases (normalised orgs), including faithful re-uploads of the same weights.
_PUBLISHERS: dict[str, frozenset[str]] = {
    family: frozenset(orgs.split())
    for family, orgs in {
        "llama": "meta-llama meta facebook huggyllama codellama",
        "qwen": "qwen alibaba",
        "mistral": "mistralai mistral-ai mistral-community mistral",
        "mixtral": "mistralai mistral-ai mistral-community mistral",
        "gemma": "google",
        "gemini": "google gemini vertexai",
        "phi": "microsoft",
        "deepseek": "deepseek-ai deepseek",
        "yi": "01-ai",
        "falcon": "tiiuae",
        "granite": "ibm-granite ibm",
        "aya": "cohereforai coherelabs cohere",
        "command": "cohere cohereforai coherelabs",
        "olmo": "allenai",
        "tulu": "allenai",
        "zephyr": "huggingfaceh4",
        "solar": "upstage",
        "gpt": "openai openai-community",
        "o-series": "openai",
        "claude": "anthropic",
        "grok": "xai",
        "glm": "thudm zai-org z-ai",
        "internlm": "internlm",
        "baichuan": "baichuan-inc",
        "jamba": "ai21 ai21labs",
        "pythia": "eleutherai",
        "opt": "facebook",
        "bloom": "bigscience",
        "mpt": "mosaicml",
        "starcoder": "bigcode",
        "vicuna": "lmsys",
    }.items()
}
# A bare name with no digit and no separator (`NMT`, `meow`) is a method name from a paper table more often than a
# hub repo, so it is never joined by repo name alone.
_SPECIFIC = re.compile(r"[0-9.-]")


def normalise_name(name: str) -> str:
    """Spelling-insensitive form of a model name: lower case, whitespace and `_` as `-`, no trailing `-hf`.

    Hub ids are case-insensitive and `_`/`-` are used interchangeably by the boards; `-hf` marks Meta's Llama weights
    converted to transformers format, the same weights. Everything else is kept on purpose: `-instruct`, `-chat`,
    `-it` name different models, and a bracketed scaffold (`[... Agent]`) or a `#high` setting is a system built
    around a model, not the model.
    """
    text = _WHITESPACE.sub(" ", name.strip().lower())
    text = text.replace(" ", "-").replace("_", "-")
    return text.removesuffix("-hf")


def _hub_parts(key: str) -> tuple[str, str] | None:
    """`(org, repo)` of a normalised key that is a hub id, else None (bare names, free text, OpenCLIP tags)."""
    org, slash, repo = key.partition("/")
    if not slash or not repo or not _HUB_ORG.fullmatch(org):
        return None
    return org, repo


def _signature(name: str) -> tuple[frozenset[str], frozenset[float]]:
    """Variant words and parameter counts named in a raw name: what must agree for two names to be one model.

    CamelCase is not split here: brand names would then say `chat` (`ChatGLM`) or `mini` (`MiniChat`).
    """
    words = frozenset(t for t in _TOKEN_SPLIT.split(name.lower()) if t in _VARIANT_WORDS)
    return words, frozenset(_size_tokens(name))


def _same_variant(bare: str, hub_repo: str) -> bool:
    """Whether a bare display name and the hub repo a source linked it to can be the same model.

    The variant words must match exactly; sizes only where both sides state one, because display names often add a
    size the repo name leaves out (`Athene-v2-Chat-72B` -> `Nexusflow/Athene-V2-Chat`).
    """
    bare_words, bare_sizes = _signature(bare)
    repo_words, repo_sizes = _signature(hub_repo)
    return bare_words == repo_words and (not bare_sizes or not repo_sizes or bare_sizes == repo_sizes)


def _publisher_allows(bare: str, hub: str) -> bool:
    """False when `bare` names a vendor's own release and `hub` belongs to someone else (see `_RELEASE_WORDS`)."""
    family = _match_family(bare)
    publishers = _PUBLISHERS.get(family or "")
    if publishers is None or hub.partition("/")[0] in publishers:
        return True
    tokens = _WORDS_AND_NUMBERS.findall(bare)
    return not all(
        token.isdigit() or len(token) == 1 or token in _RELEASE_WORDS or _match_family(token) == family
        for token in tokens
    )


@dataclass(frozen=True)
class ModelNames:
    """Maps raw model names to canonical keys, given the names (and hub ids) seen when it was built.

    Rules, in order: a name with a slash keys to its normalised self (two orgs never merge, an agent never merges
    with its model); a bare name keys to the hub id a source linked it to, when that link is unambiguous and names
    the same variant; else to the only hub id among the known names with the same repo part; else to itself. When two
    or more orgs publish the same repo name (`shadowml/DareBeagle-7B`, `flemmingmiguel/DareBeagle-7B`), or sources
    link the bare name to different hub ids, it is ambiguous and stays its own key; so does a vendor's release name
    whose only match is someone else's repo (`Llama-3-8B-Instruct` is not `AI-Sweden-Models/Llama-3-8B-instruct`).
    Names unseen at build time get keys by the same rules.
    """

    _bare_to_hub: Mapping[str, str]
    _ambiguous: frozenset[str]
    _repo_to_hub: Mapping[str, str]

    @classmethod
    def build(cls, names: Iterable[str], hf_ids: Mapping[str, str] | None = None) -> ModelNames:
        """Index hub ids by repo part and collect the bare-name -> hub-id links that are safe to follow.

        `hf_ids` maps raw names to hub ids (models.csv.gz `hf_id`, partly matched by name by the corpus builder, so
        checked like any other join); links of names that already carry an org are ignored, since a hub id there may
        be the base model of an agent or another org's copy of the weights.
        """
        hub_keys = {normalise_name(name) for name in names}
        links: dict[str, set[str]] = defaultdict(set)
        sizes: dict[str, frozenset[float]] = {}
        for raw, hf_id in (hf_ids or {}).items():
            if not isinstance(hf_id, str):  # a table's missing hf_id (NaN) is no link
                continue
            bare, hub = normalise_name(raw), normalise_name(hf_id)
            if (
                "/" not in bare
                and _hub_parts(hub) is not None
                and _same_variant(raw, hf_id.partition("/")[2])
                and _publisher_allows(bare, hub)
            ):
                links[bare].add(hub)
                sizes[bare] = _signature(raw)[1]
        bare_to_hub = _consistent_links(links, sizes)
        hub_keys.update(bare_to_hub.values())

        orgs_by_repo: dict[str, set[str]] = defaultdict(set)
        for key in hub_keys:
            parts = _hub_parts(key)
            if parts is not None:
                orgs_by_repo[parts[1]].add(key)
        return cls(
            _bare_to_hub=bare_to_hub,
            _ambiguous=frozenset(bare for bare, hubs in links.items() if len(hubs) > 1),
            _repo_to_hub={repo: next(iter(keys)) for repo, keys in orgs_by_repo.items() if len(keys) == 1},
        )

    def key(self, raw: str) -> str:
        """Canonical key of one raw name."""
        name = normalise_name(raw)
        if "/" in name:
            return name
        if name in self._bare_to_hub:
            return self._bare_to_hub[name]
        hub = self._repo_to_hub.get(name)
        if hub is None or name in self._ambiguous or not _SPECIFIC.search(name) or not _publisher_allows(name, hub):
            return name
        return hub

    def keys(self, raws: Iterable[str]) -> list[str]:
        """Canonical keys of many raw names, in order."""
        return [self.key(raw) for raw in raws]


def _consistent_links(links: Mapping[str, set[str]], sizes: Mapping[str, frozenset[float]]) -> dict[str, str]:
    """Keep the bare -> hub links that are unambiguous both ways.

    A bare name linked to two hub ids is ambiguous. A hub id claimed by bare names of different sizes is a repo that
    hosts several models (`BlinkDL/rwkv-4-raven` for every RWKV-4 Raven size), so none of those links is kept.
    """
    unique = {bare: next(iter(hubs)) for bare, hubs in links.items() if len(hubs) == 1}
    sizes_by_hub: dict[str, set[frozenset[float]]] = defaultdict(set)
    for bare, hub in unique.items():
        if sizes[bare]:
            sizes_by_hub[hub].add(sizes[bare])
    return {bare: hub for bare, hub in unique.items() if len(sizes_by_hub[hub]) <= 1}


# ----------------------------------------------------------------------------------------------------------------------
# Families
# ----------------------------------------------------------------------------------------------------------------------

MODERN_FAMILIES: tuple[str, ...] = (
    "qwen", "llama", "mistral", "gemma", "phi", "deepseek", "yi", "falcon", "granite", "aya", "olmo", "zephyr", "solar",
)  # fmt: skip

# Ordered: the first family with a matching alias wins, so specific families come before the generic ones they
# contain or build on: embedders named after their base LLM (`e5-mistral`, `gte-Qwen2`), `deepseek` distills of Qwen
# and Llama, `solar` before `llama`, `zephyr` before `mistral` (but after the other bases the Zephyr recipe was
# applied to), `xlm-roberta` before `roberta` before `bert`, timm's `efficientvit_l2` before the `l2` of Llama-2
# fine-tunes. Words that LLM fine-tunes also use in their names (`stella`, `eva`, `canary`, `t5`, `bert`) come after
# the LLM families. Alias syntax: a leading `*` lets the alias start inside a word (`codellama`, `tinymistral`,
# `rubert`); a trailing `*` lets a word continue after it (`llamafied`, `regnety`). Otherwise the alias must be a
# whole word, up to trailing digits or a `v2`-style version (none after an alias ending in a digit), which keeps
# `phi` out of `dolphin` and `sciphi`, `yi` out of other words, `opt` out of `optimus` and `e5` out of `e500`.
_FAMILY_ALIASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Text embedders and rerankers with distinctive names.
    ("sentence-t5", ("sentence-t5",)),
    ("gtr", ("gtr-t5",)),
    ("e5", ("e5", "multilingual-e5", "koe5")),
    ("gte", ("gte",)),
    ("bge", ("bge",)),
    ("minilm", ("*minilm*",)),
    ("mpnet", ("mpnet*",)),
    ("labse", ("labse",)),
    ("nomic", ("*nomic*",)),
    ("jina", ("jina*",)),
    ("instructor", ("instructor",)),
    ("mxbai", ("mxbai",)),
    ("nv-embed", ("nv-embed",)),
    ("sfr-embedding", ("sfr-embedding",)),
    ("m3e", ("m3e",)),
    ("text2vec", ("text2vec",)),
    ("text-embedding", ("text-embedding", "text-multilingual-embedding")),
    ("model2vec", ("m2v", "potion", "model2vec")),
    ("colbert", ("*colbert*",)),
    ("colpali", ("colpali", "colsmol")),
    # Vision-language, image and audio-text.
    ("siglip", ("siglip*",)),
    ("coca", ("coca",)),
    ("clip", ("*clip", "clipa", "open-clip")),
    ("clap", ("*clap",)),
    ("blip", ("blip",)),
    ("llava", ("*llava*",)),
    ("dino", ("dino",)),
    ("vjepa", ("vjepa",)),
    ("swin", ("swin",)),
    ("efficientvit", ("efficientvit",)),
    ("fastvit", ("fastvit",)),
    ("vit", ("vit", "vision-transformer")),
    ("convnext", ("convnext*",)),
    ("efficientnet", ("efficientnet*",)),
    ("mobilenet", ("mobilenet*",)),
    ("regnet", ("regnet*",)),
    ("inception", ("inception*",)),
    ("resnet", ("resnet*",)),
    ("densenet", ("densenet*",)),
    ("vgg", ("vgg",)),
    ("deit", ("deit",)),
    ("beit", ("beit",)),
    # Speech.
    ("whisper", ("*whisper",)),
    ("wav2vec", ("wav2vec",)),
    ("hubert", ("hubert",)),
    ("wavlm", ("wavlm",)),
    ("data2vec", ("data2vec",)),
    ("unispeech", ("unispeech",)),
    ("sew", ("sew",)),
    ("mms", ("mms",)),
    ("omniasr", ("omniasr",)),
    ("seamless", ("seamless",)),
    ("moonshine", ("moonshine",)),
    ("parakeet", ("parakeet",)),
    ("conformer", ("*conformer",)),
    # Decoder LLMs: distills and lines named as a modern family first, then base families, then brands.
    ("deepseek", ("*deepseek*",)),
    ("solar", ("solar",)),
    ("olmo", ("olmo", "olmoe")),
    ("granite", ("granite*",)),
    ("falcon", ("*falcon*",)),
    ("yi", ("yi",)),
    ("gemma", ("*gemma*",)),
    ("phi", ("phi", "phixtral")),
    ("qwen", ("*qwen*", "qwq", "qvq")),
    ("llama", ("*llama*", "l2", "l3")),
    ("stablelm", ("stablelm*", "stable-code")),
    ("zephyr", ("zephyr",)),
    ("mixtral", ("*mixtral*",)),
    ("mistral", ("*mistral*", "ministral", "codestral", "devstral", "magistral", "mathstral", "pixtral", "voxtral")),
    ("aya", ("aya",)),
    ("gpt4all", ("gpt4all",)),
    ("gpt", ("gpt", "gptj", "gptneo", "gptneox", "neox", "chatgpt", "davinci", "curie", "babbage")),
    ("o-series", ("o1", "o3", "o4")),
    ("claude", ("claude",)),
    ("gemini", ("gemini",)),
    ("palm", ("palm", "bison")),
    ("command", ("command",)),
    ("cohere", ("cohere",)),
    ("grok", ("grok",)),
    ("jurassic", ("jurassic", "j1", "j2")),
    ("luminous", ("luminous",)),
    ("palmyra", ("palmyra",)),
    ("ernie", ("ernie",)),
    ("hunyuan", ("hunyuan",)),
    ("kimi", ("kimi",)),
    ("minimax", ("minimax",)),
    ("doubao", ("doubao",)),
    ("internlm", ("internlm*",)),
    ("baichuan", ("baichuan*",)),
    ("glm", ("glm", "chatglm", "codegeex")),
    ("pythia", ("pythia",)),
    ("opt", ("opt",)),
    ("bloom", ("bloom", "bloomz")),
    ("mpt", ("mpt",)),
    ("starcoder", ("starcoder*", "santacoder")),
    ("smollm", ("smollm*",)),
    ("minicpm", ("minicpm*",)),
    ("nemotron", ("*nemotron",)),
    ("rwkv", ("rwkv",)),
    ("mamba", ("mamba",)),
    ("jamba", ("jamba",)),
    ("dbrx", ("dbrx",)),
    ("xglm", ("xglm",)),
    ("codegen", ("codegen*",)),
    ("exaone", ("exaone",)),
    ("redpajama", ("redpajama",)),
    ("athene", ("athene",)),
    ("vicuna", ("vicuna",)),
    ("wizardlm", ("wizardlm", "wizardcoder", "wizardmath")),
    ("tulu", ("tulu", "codetulu")),
    ("openchat", ("openchat",)),
    ("hermes", ("*hermes",)),
    ("orca", ("*orca",)),
    ("platypus", ("*platypus",)),
    ("dolphin", ("dolphin",)),
    ("alpaca", ("alpaca",)),
    ("guanaco", ("guanaco",)),
    ("koala", ("koala",)),
    ("dolly", ("dolly",)),
    # Names LLM fine-tunes reuse (`llama-3-stella-8B`, `EVA-Qwen2.5`, `MT5-Gen1-gemma-2-9B`, `llama-...-bert-f1`).
    ("stella", ("stella",)),
    ("voyage", ("voyage",)),
    ("arctic", ("arctic",)),
    ("gist", ("gist",)),
    ("kalm", ("kalm",)),
    ("uae", ("uae",)),
    ("piccolo", ("piccolo",)),
    ("ruri", ("ruri",)),
    ("conan", ("conan",)),
    ("titan", ("titan",)),
    ("eva", ("eva",)),
    ("canary", ("canary",)),
    ("xlm-roberta", ("xlm-roberta", "xlmroberta")),
    ("roberta", ("*roberta",)),
    ("deberta", ("deberta",)),
    ("camembert", ("camembert",)),
    ("distilbert", ("distilbert",)),
    ("albert", ("albert",)),
    ("modernbert", ("modernbert",)),
    ("electra", ("electra",)),
    ("xlnet", ("xlnet",)),
    ("bert", ("*bert", "bertimbau")),
    ("t5", ("t5", "mt5", "umt5", "byt5", "monot5", "flan-t5")),
    ("bart", ("bart",)),
    ("lstm", ("*lstm",)),
    ("elmo", ("elmo",)),
)


def _alias_pattern(alias: str) -> str:
    """Regex of one `_FAMILY_ALIASES` alias, with the word boundaries its `*` markers leave in place."""
    core = alias.strip("*")
    left = "" if alias.startswith("*") else r"(?<![a-z0-9])"
    if alias.endswith("*"):
        right = ""
    elif core[-1].isdigit():
        right = r"(?![a-z0-9])"
    else:
        right = r"(?![a-uw-z]|v(?!\d))"
    return left + re.escape(core) + right


_FAMILY_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile("|".join(_alias_pattern(alias) for alias in aliases)) for _, aliases in _FAMILY_ALIASES
)
# (literal core, family rank) of every alias: a substring test that leaves few families for the regexes to confirm.
_ALIAS_CORES: tuple[tuple[str, int], ...] = tuple(
    (alias.strip("*"), rank) for rank, (_, aliases) in enumerate(_FAMILY_ALIASES) for alias in aliases
)
_CAMEL_LOWER_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CAMEL_ACRONYM = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
# HF config class suffixes: `Qwen2ForCausalLM`, `GPT2LMHeadModel`, `ChatGLMModelM` name the family before them.
_ARCH_SUFFIX = re.compile(r"(For[A-Z]\w*|LMHead\w*|Model\w*)$")
# Architecture classes whose stem is not the family's name.
_ARCH_FAMILIES = {"gptbigcode": "starcoder", "cohere": "command", "cohere2": "command", "mosaicgpt": "mpt"}
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


def _match_family(text: str) -> str | None:
    """First family, in `_FAMILY_ALIASES` order, with an alias in `text` (normalised first), or None."""
    text = normalise_name(text)
    for rank in sorted({rank for core, rank in _ALIAS_CORES if core in text}):
        if _FAMILY_PATTERNS[rank].search(text):
            return _FAMILY_ALIASES[rank][0]
    return None


def _repo_part(name: str) -> str:
    """The part of a name that says what the model is: the repo of a hub id, else the whole name.

    Orgs are publishers, not families (`sentence-transformers/...` and `BAAI/...` publish several families), so an org
    never decides the family.
    """
    org, slash, repo = name.strip().partition("/")
    if slash and repo and _HUB_ORG.fullmatch(normalise_name(org)):
        return repo
    return name


def _architecture_family(architecture: str) -> str | None:
    """Family named by an architecture string: an HF config class or a timm module name.

    Class names are proper CamelCase, so they are also read CamelCase-split (`GPTNeoX` -> `GPT-Neo-X`); names are
    not, because there splitting invents words (`SciPhi` -> `Sci-Phi`). A timm module (`maxxvit`, `byobnet`) or a
    class stem no alias knows (`Hymba`) is a family in its own right.
    """
    arch = architecture.replace(";", "").strip()  # one source spells a class `L;l;a;m;a;F;o;r;...`
    stem = _ARCH_SUFFIX.sub("", arch) or arch
    camel = _CAMEL_ACRONYM.sub("-", _CAMEL_LOWER_UPPER.sub("-", stem))
    family = _ARCH_FAMILIES.get(stem.lower()) or _match_family(stem) or _match_family(camel)
    if family is None and _IDENTIFIER.fullmatch(stem.lower()):
        family = normalise_name(stem)
    return family


def family_of(name: str, architecture: str | None = None) -> str:
    """Lower-case model family from the name, else from the architecture string, else `"unknown"`.

    The architecture (an HF config class such as `Qwen2ForCausalLM`, or a timm module such as `regnet`) is only a
    fallback: fine-tunes keep their base model's class, so a Phi-4 merge can say `LlamaForCausalLM`. Missing values
    read from a table (None, NaN, blank) count as no architecture.
    """
    text = _repo_part(name)
    if name.strip().lower().startswith("timm/"):
        text = text.partition(".")[0]  # `arch.tag`: tags name recipes (`regnety_160.deit_in1k`, `.clip_laion2b`)
    family = _match_family(text)
    if family is None and isinstance(architecture, str) and architecture.strip():
        family = _architecture_family(architecture)
    return family or UNKNOWN_FAMILY


# ----------------------------------------------------------------------------------------------------------------------
# Sizes
# ----------------------------------------------------------------------------------------------------------------------

SIZE_EDGES_B: tuple[float, ...] = (
    0.001, 0.003, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 3, 7, 14, 35, 70, 100, 1000,
)  # fmt: skip
NUM_SIZE_BUCKETS = len(SIZE_EDGES_B) + 2  # bucket 0 = unknown, then one more bucket than edges

_UNITS = {"b": 1e9, "m": 1e6}
# A size is a number with a `b`/`m` unit standing as its own token: not inside a word or after a digit or a dot
# (`laion2b`, `s34b` count training samples; `v1.5` is a version), and not followed by a letter (`4bit`). Dates,
# context lengths (`32k`) and resolutions (`224`, `patch32`) carry no such unit. Optional prefixes: `8x` experts of
# a mixture, and an `a` marking the active size of a MoE (`A2.7B`).
_SIZE = re.compile(
    r"(?<![a-z0-9.])(?:(?P<experts>\d+)x)?(?P<active>a)?(?P<number>\d+(?:\.\d+)?)(?P<unit>[bm])(?![a-z0-9])"
)
# Decimal sizes written without a dot: `1_6b` after a dash is 1.6B (`stablelm-2-1_6b`), while after an underscore
# it is two tokens (`llama_2_7b`); BLOOM writes 7.1B as `7b1`.
_UNDERSCORE_DECIMAL = re.compile(r"(?:(?<=-)|^)(\d+)_(\d+)(?=[bm](?![a-z0-9]))")
_BLOOM_DECIMAL = re.compile(r"(?<![a-z0-9.])(\d+)([bm])(\d+)(?![a-z0-9.])")


def _size_tokens(name: str) -> list[float]:
    """Total sizes named in a raw name, or the active sizes when only those are named."""
    text = _UNDERSCORE_DECIMAL.sub(r"\1.\2", name.strip().lower())
    text = _BLOOM_DECIMAL.sub(r"\1.\3\2", normalise_name(text))
    totals, active = [], []
    for match in _SIZE.finditer(text):
        value = float(match["number"]) * _UNITS[match["unit"]] * int(match["experts"] or 1)
        if value > 0:  # `0b` is no size: unknown is None, never 0
            (active if match["active"] else totals).append(value)
    return totals or active


def parse_size(name: str) -> float | None:
    """Parameter count named in a model name, in parameters; None when the name names none (never 0).

    `Qwen3-235B-A22B` is 235e9 (total over active), `Qwen1.5-MoE-A2.7B` 2.7e9 (only the active size is named),
    `Mixtral-8x7B` 56e9. With several sizes the largest wins: the others are usually a training-set size
    (`Infinity-Instruct-3M-...-7B`) or a reward model's (`...-8B-Instruct-GPM-2B`).
    """
    sizes = _size_tokens(_repo_part(name))
    return max(sizes) if sizes else None


def size_bucket(n_params: float | None) -> int:
    """Spec 1.8 bucket of a parameter count: 0 = unknown, 1 = below 1M, ..., 22 = 1T and above."""
    return int(size_buckets(np.array([np.nan if n_params is None else n_params], dtype=float))[0])


def size_buckets(n_params: np.ndarray) -> np.ndarray:
    """Vectorised `size_bucket`; NaN, non-finite and non-positive counts are unknown (bucket 0)."""
    sizes_b = np.asarray(n_params, dtype=float) / 1e9
    known = np.isfinite(sizes_b) & (sizes_b > 0)
    buckets = 1 + np.searchsorted(np.asarray(SIZE_EDGES_B), np.where(known, sizes_b, 0.0), side="right")
    return np.where(known, buckets, 0).astype(np.int64)
