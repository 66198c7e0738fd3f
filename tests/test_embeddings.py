from pathlib import Path

import numpy as np

from lens.embeddings import Embedder


def test_vectors_are_unit_norm_and_meaningful(embedder: Embedder):
    vectors = embedder.encode(["speech recognition of English audiobooks", "automatic speech transcription", "a cat"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_rerun_embeds_nothing_twice(embedder: Embedder):
    texts = ["ImageNet-1k validation images", "Stanford Question Answering Dataset"]
    first = embedder.encode(texts)
    fresh = Embedder(embedder.encoder, embedder.directory.parents[1], embedder.max_tokens)
    again = fresh.encode(texts)
    assert fresh._model is None  # served from the disk cache without loading the encoder
    assert np.array_equal(first, again)


def test_cache_is_per_encoder(tmp_path: Path):
    a = Embedder("all-MiniLM-L6-v2", tmp_path)
    b = Embedder("some/other-encoder", tmp_path)
    assert a.directory != b.directory


def test_texts_a_service_is_sent_are_embedded_but_not_cached(embedder: Embedder):
    """A service sees endless distinct descriptions: they must not grow the cache on disk or in memory."""
    shards, cached = set(embedder.directory.glob("shard-*.npz")), embedder.cached
    query = "bird songs recorded at dawn in a wet rainforest, one species per clip"
    served = embedder.encode([query], remember=False)
    assert embedder.cached == cached and set(embedder.directory.glob("shard-*.npz")) == shards
    assert np.allclose(served, embedder.encode([query]), atol=1e-6)  # the vector the cached path gives
