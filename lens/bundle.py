"""Self-contained model bundles: everything `rank` and `recommend` need, without the corpus.

A bundle directory holds `weights.safetensors` (the committee of networks), `pool.safetensors` (features of every
known model and the description vectors of every known group), `vocabulary.json`, `manifest.json` (config, encoder,
training history, data fingerprint) and three small Parquet tables: the pool's metadata, the known groups, and the
observations the model was trained on (the evidence shown next to a recommendation).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from lens.corpus import Corpus
from lens.embeddings import Embedder
from lens.errors import ModelLensError
from lens.model import Committee, ModelFeatures, Vocabulary
from lens.neighbours import NeighbourIndex
from lens.training import LensConfig, TrainedModel

FORMAT = 4
"""Bumped whenever the weights or pool a bundle holds change meaning (3: the neighbour evidence is a kNN score
stacked on the network's, not an input of its first layer; 4: the weights are a `Committee`'s), so an old bundle is
refused with a reason."""
_MODEL_COLUMNS = ["key", "name", "n_parameters", "license", "family", "size_bucket"]
_GROUP_COLUMNS = ["key", "source", "task", "dataset", "metric", "higher_is_better", "description", "text", "trainable"]


class BundleError(ModelLensError):
    """A model bundle is missing, incomplete or from an incompatible version."""


@dataclass
class Bundle:
    """A loaded bundle: the networks (a `Committee`) in eval mode plus its pool, groups and observations."""

    model: Committee
    vocabulary: Vocabulary
    pool: ModelFeatures
    models: pd.DataFrame
    groups: pd.DataFrame
    group_vectors: np.ndarray
    observations: pd.DataFrame
    manifest: dict

    @property
    def encoder(self) -> tuple[str, int]:
        return self.manifest["encoder"], int(self.manifest["encoder_max_tokens"])

    def neighbours(self) -> NeighbourIndex | None:
        """The index the network reads neighbour evidence from (the trainable groups' records), if it does."""
        config = self.model.config
        if not config.uses_evidence:
            return None
        trainable = self.groups.index[self.groups["trainable"]]
        records = self.observations[self.observations["group_id"].isin(trainable)]
        return NeighbourIndex.from_records(
            records,
            self.groups,
            self.group_vectors,  # row-aligned with self.groups
            len(self.models),
            config.neighbours,
            config.neighbour_temperature,
            config.neighbour_shrinkage,
            config.evidence_floor,
            config.evidence_full,
        )


def save_bundle(path: Path, trained: TrainedModel, corpus: Corpus, embedder: Embedder, config: LensConfig) -> Path:
    """Write `trained` (fitted on `corpus`) as a bundle directory at `path`."""
    path.mkdir(parents=True, exist_ok=True)
    model = trained.model if isinstance(trained.model, Committee) else Committee([trained.model])  # one network
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path / "weights.safetensors")
    groups = corpus.groups[corpus.groups["n_models"] > 0]
    pool = trained.models
    save_file(
        {
            "id_index": pool.id_index,
            "name_tokens": pool.name_tokens,
            "text": pool.text,
            "size_bucket": pool.size_bucket,
            "family": pool.family,
            "group_vectors": torch.as_tensor(embedder.encode(list(groups["text"]))),
        },
        path / "pool.safetensors",
    )
    corpus.models[_MODEL_COLUMNS].to_parquet(path / "models.parquet")
    groups[_GROUP_COLUMNS].reset_index().to_parquet(path / "groups.parquet")
    corpus.records[["group_id", "model_id", "value", "z"]].to_parquet(path / "observations.parquet")
    (path / "vocabulary.json").write_text(json.dumps(trained.vocabulary.to_dict()))
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.to_dict(),
        "encoder": embedder.encoder,
        "encoder_max_tokens": embedder.max_tokens,
        "text_dim": int(pool.text.shape[1]),
        "data_fingerprint": corpus.fingerprint,
        "data": corpus.summary(),
        "best_epoch": trained.best_epoch,
        "history": [vars(e) for e in trained.history],
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def load_bundle(path: Path) -> Bundle:
    """Load a bundle directory written by `save_bundle`."""
    path = Path(path)
    required = ("manifest.json", "weights.safetensors", "pool.safetensors", "vocabulary.json", "models.parquet")
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        raise BundleError(
            f"{path} is not a model bundle: missing {', '.join(missing)} (write one with `modellens train`)"
        )
    manifest = json.loads((path / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise BundleError(
            f"{path}: bundle format {manifest.get('format')} is not supported (expected {FORMAT}); retrain it "
            "(`modellens train`, or `modellens retrain` for a registered model)"
        )
    vocabulary = Vocabulary.from_dict(json.loads((path / "vocabulary.json").read_text()))
    config = LensConfig.from_dict(manifest["config"])
    weights = load_file(path / "weights.safetensors")
    members = 1 + max(int(key.split(".")[1]) for key in weights)  # keys are `members.<k>.<parameter>`
    model = Committee.build(config.model, vocabulary, manifest["text_dim"], members)
    model.load_state_dict(weights)  # strict: a mismatched bundle fails loudly
    model.eval()
    tensors = load_file(path / "pool.safetensors")
    pool = ModelFeatures(*(tensors[k] for k in ("id_index", "name_tokens", "text", "size_bucket", "family")))
    return Bundle(
        model=model,
        vocabulary=vocabulary,
        pool=pool,
        models=pd.read_parquet(path / "models.parquet"),
        groups=pd.read_parquet(path / "groups.parquet").set_index("group_id"),
        group_vectors=tensors["group_vectors"].numpy(),
        observations=pd.read_parquet(path / "observations.parquet"),
        manifest=manifest,
    )
