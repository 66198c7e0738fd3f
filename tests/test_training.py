import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lens.corpus import Corpus, Record
from lens.embeddings import Embedder, text_hash
from lens.evaluate import evaluate
from lens.model import Committee, ModelConfig, ModelFeatures, ModelLens, Output, QueryFeatures, Vocabulary
from lens.rankers import Context, make_ranker
from lens.rankers.modellens import ModelLensRanker
from lens.settings import PROJECT_ROOT
from lens.splits import make_split
from lens.training import (
    Batch,
    LensConfig,
    TrainConfig,
    TrainingRecords,
    Validation,
    ensemble_loss,
    hold_out_benchmarks,
    list_mle,
    member_seeds,
    query_features,
    train,
    train_selected,
)
from serve.local import free_ports

TINY = ModelConfig(id_dim=8, token_dim=8, name_buckets=512, size_dim=4, family_dim=4, group_id_dim=8, task_dim=4,
                   metric_dim=4, hidden=16)  # fmt: skip


def tiny(**training) -> LensConfig:
    return LensConfig(TINY, TrainConfig(**{"progress": False, **training}))


class HashEmbedder:
    """A stand-in for `Embedder` with the same `encode`: a fixed random unit vector per text, no encoder."""

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = [np.random.default_rng(int(text_hash(t)[:8], 16)).standard_normal(8) for t in texts]
        return np.array([v / np.linalg.norm(v) for v in vectors], dtype=np.float32)


BENCHMARKS = ("alpha", "beta", "gamma", "delta")


def toy_corpus(seed: int = 0) -> Corpus:
    """Four benchmarks of three datasets, two tasks, 40 models whose skill depends on the task: a ranking to learn."""
    rng = np.random.default_rng(seed)
    skill = rng.standard_normal((2, 40))
    records = []
    for b, benchmark in enumerate(BENCHMARKS):
        task = b % 2
        for d in range(3):
            for m in rng.choice(40, 25, replace=False):
                value = float(skill[task, m] + 0.3 * rng.standard_normal())
                records.append(Record("toy", f"task{task}", f"{benchmark}-{d}", f"org/model-{m}", "acc", value, True))
    return Corpus.from_records(records)


# ----------------------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------------------


def test_the_yaml_config_holds_the_defaults():
    assert LensConfig.from_yaml(PROJECT_ROOT / "configs" / "modellens.yaml") == LensConfig()


def test_unknown_config_keys_are_errors(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  learning_rte: 0.1\n")
    with pytest.raises(ValueError, match="learning_rte"):
        LensConfig.from_yaml(path)
    assert LensConfig.from_dict(LensConfig().to_dict()) == LensConfig()


# ----------------------------------------------------------------------------------------------------------------------
# Losses and sampling
# ----------------------------------------------------------------------------------------------------------------------


def test_list_mle_is_the_mean_plackett_luce_negative_log_likelihood():
    scores = torch.tensor([[2.0, 0.5, -1.0], [0.3, 1.0, 0.0]])
    present = torch.tensor([[True, True, True], [True, True, False]])
    first = (torch.logsumexp(scores[0], 0) - 2.0 + torch.logsumexp(scores[0, 1:], 0) - 0.5 + 0.0) / 3
    second = (F.softplus(torch.tensor(1.0 - 0.3)) + 0.0) / 2
    torch.testing.assert_close(list_mle(scores, present), (first + second) / 2)


class FixedOutput(nn.Module):
    def __init__(self, score: torch.Tensor, z: torch.Tensor):
        super().__init__()
        self.output = Output(score, z)

    def forward(self, models, queries) -> Output:
        return self.output


def test_ensemble_loss_weights_the_four_terms_as_the_spec():
    score, z_hat = torch.tensor([1.0, 0.0, 0.5, -0.2]), torch.tensor([0.5, -0.5, 0.1, 0.0])
    z = torch.tensor([1.0, -1.0, 0.4, -0.4])
    _, models, queries = _synthetic_rows(4)
    lists = torch.tensor([[True, True], [True, True]])
    better, worse, w = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([0.9, 0.5])
    batch = Batch(models, queries, lists, z, better, worse, w)
    loss = ensemble_loss(FixedOutput(score, z_hat), batch, TrainConfig())
    listwise = list_mle(score.view(2, 2), lists)
    point_list = ((z_hat - z) ** 2).mean()
    bpr = (w * F.softplus(-(score[better] - score[worse]))).mean()
    point_pair = (w * ((z_hat[better] - z[better]) ** 2 + (z_hat[worse] - z[worse]) ** 2)).mean()
    torch.testing.assert_close(loss, 0.5 * (listwise + 0.1 * point_list) + 1.0 * (bpr + 0.1 * point_pair))


def test_an_epoch_lists_every_record_once_best_first_and_pairs_are_weighted_by_z_gap():
    corpus = toy_corpus()
    records = TrainingRecords(corpus)
    lists = records.lists(np.random.default_rng(0), max_list=10)
    rows = np.concatenate(lists)
    assert sorted(rows) == list(range(len(records.frame)))
    assert max(map(len, lists)) <= 10
    for part in lists:
        assert len(set(records.group_id[part])) == 1
        assert (np.diff(records.frame["value"].to_numpy()[part]) <= 0).all()
    vocab = Vocabulary.build(records.frame, corpus.groups, corpus.models)
    embedder = HashEmbedder()
    models = ModelFeatures.build(corpus.models, vocab, embedder.encode(list(corpus.models["text"])), 512)
    config = TrainConfig(pair_batch_size=64)
    batch = records.batch(models, query_features(corpus, vocab, embedder), lists[:4], np.random.default_rng(0), config)
    assert len(batch.z) == sum(len(p) for p in lists[:4]) and len(batch.pair_weight) == 64
    assert (batch.z[batch.better] >= batch.z[batch.worse]).all()
    expected = torch.tanh(3.0 * (batch.z[batch.better] - batch.z[batch.worse]))
    torch.testing.assert_close(batch.pair_weight, expected.to(batch.pair_weight.dtype))


@pytest.mark.parametrize("ablation", [{}, {"id_views": False}, {"text_views": False}, {"evidence_view": False}])
def test_every_parameter_gets_a_gradient_in_a_training_step(ablation: dict):
    corpus = toy_corpus()
    records = TrainingRecords(corpus)
    vocab = Vocabulary.build(records.frame, corpus.groups, corpus.models)
    embedder = HashEmbedder()
    models = ModelFeatures.build(corpus.models, vocab, embedder.encode(list(corpus.models["text"])), 512)
    rng = np.random.default_rng(0)
    batch = records.batch(models, query_features(corpus, vocab, embedder), records.lists(rng, 64), rng, TrainConfig())
    torch.manual_seed(0)
    model = ModelLens(dataclasses.replace(TINY, **ablation), vocab, text_dim=8).train()
    ensemble_loss(model, batch, TrainConfig()).backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


# ----------------------------------------------------------------------------------------------------------------------
# Training loop
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_parts() -> tuple[Corpus, Corpus]:
    return hold_out_benchmarks(toy_corpus(), fraction=0.25, seed=0)


def test_training_is_reproducible_and_the_loss_decreases(toy_parts):
    train_part, val_part = toy_parts
    first = train(train_part, val_part, HashEmbedder(), tiny(max_epochs=6, patience=6, learning_rate=0.01), seed=7)
    second = train(train_part, val_part, HashEmbedder(), tiny(max_epochs=6, patience=6, learning_rate=0.01), seed=7)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [h.loss for h in first.history] == [h.loss for h in second.history]
    assert first.history[-1].loss < first.history[0].loss
    other = train(train_part, val_part, HashEmbedder(), tiny(max_epochs=1), seed=8)
    assert not torch.equal(other.model.score_head.weight, first.model.score_head.weight)


def test_early_stopping_keeps_the_best_validation_epoch(toy_parts):
    train_part, val_part = toy_parts
    config = tiny(max_epochs=30, patience=3, groups_per_batch=1, learning_rate=0.01)
    trained = train(train_part, val_part, HashEmbedder(), config, seed=0)
    taus = [h.val_tau for h in trained.history]
    assert trained.best_epoch == int(np.argmax(taus)) + 1 > 1
    assert len(taus) == trained.best_epoch + 3  # stopped after `patience` epochs without improvement
    queries = query_features(train_part, trained.vocabulary, HashEmbedder())
    validation = Validation(val_part, queries, trained.neighbours)
    assert math.isclose(validation.tau(trained.model, trained.models), max(taus), abs_tol=1e-9)


def test_without_validation_it_runs_exactly_max_epochs(toy_parts):
    trained = train(toy_parts[0], None, HashEmbedder(), tiny(max_epochs=3), seed=0)
    assert trained.best_epoch == 3 and len(trained.history) == 3
    assert all(math.isnan(h.val_tau) for h in trained.history)


def test_the_final_model_is_a_committee_of_refits_for_the_selected_epochs():
    corpus = toy_corpus()
    two = dataclasses.replace(TINY, members=2)
    config = dataclasses.replace(tiny(max_epochs=8, patience=2, learning_rate=0.01), model=two)
    selection, final = train_selected(corpus, HashEmbedder(), config, seed=3)
    assert isinstance(final.model, Committee) and len(final.model.members) == 2
    assert len(final.history) == final.best_epoch == selection.best_epoch  # each refit ran the selected epochs
    first, second = final.model.members
    assert not torch.equal(first.score_head.weight, second.score_head.weight)  # their own seeds
    refit = train(corpus, None, HashEmbedder(), tiny(max_epochs=selection.best_epoch, learning_rate=0.01), seed=3)
    for (name, a), b in zip(first.state_dict().items(), refit.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # the first member is the run's own seed: one member reproduces one network

    kept = dataclasses.replace(tiny(max_epochs=8, patience=2, learning_rate=0.01, refit=False), model=two)
    selection, final = train_selected(corpus, HashEmbedder(), kept, seed=3)
    assert final.model.members[0] is selection.model  # without refit the members are selection runs
    assert member_seeds(3, 3)[0] == 3 and len(set(member_seeds(3, 3)) | set(member_seeds(4, 3))) == 6


def test_the_registered_ranker_beats_random_on_new_datasets(slice_corpus: Corpus, embedder: Embedder):
    parts = make_split(slice_corpus, "new_dataset", seed=2025).partition(slice_corpus)
    context = Context(embedder, seed=2025)
    ranker = make_ranker("ModelLens", context)
    assert isinstance(ranker, ModelLensRanker)
    ranker.config = tiny(max_epochs=4, patience=4)
    lens = evaluate(ranker, parts, "new_dataset").metrics
    chance = evaluate(make_ranker("random", context), parts, "new_dataset").metrics
    assert lens["groups"] == chance["groups"] >= 10
    assert lens["wtau_top"] > chance["wtau_top"] + 0.2
    assert lens["ndcg@10"] > chance["ndcg@10"]


# ----------------------------------------------------------------------------------------------------------------------
# Distributed data parallel
# ----------------------------------------------------------------------------------------------------------------------


def _synthetic_rows(n: int, seed: int = 0) -> tuple[Vocabulary, ModelFeatures, QueryFeatures]:
    generator = torch.Generator().manual_seed(seed)
    vocab = Vocabulary(
        models=tuple(f"m{i}" for i in range(6)),
        groups=("g0", "g1"),
        tasks=("t",),
        metrics=("acc",),
        families=("unknown",),
    )
    models = ModelFeatures(
        id_index=torch.randint(0, 7, (n,), generator=generator),
        name_tokens=torch.randint(0, 513, (n, 3), generator=generator),
        text=torch.randn(n, 8, generator=generator),
        size_bucket=torch.randint(0, 23, (n,), generator=generator),
        family=torch.zeros(n, dtype=torch.long),
    )
    queries = QueryFeatures(
        id_index=torch.randint(0, 3, (n,), generator=generator),
        description=torch.randn(n, 8, generator=generator),
        task=torch.randint(0, 2, (n,), generator=generator),
        metric=torch.randint(0, 2, (n,), generator=generator),
    )
    return vocab, models, queries


def _ddp_worker(rank: int, world: int, port: int, out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        vocab, models, queries = _synthetic_rows(12, seed=rank)  # different data on each rank
        lists = torch.ones(3, 4, dtype=torch.bool)
        z = torch.randn(12, generator=torch.Generator().manual_seed(rank))
        pairs = (torch.tensor([0, 4, 8]), torch.tensor([3, 7, 11]), torch.ones(3))
        batch = Batch(models, queries, lists, z, *pairs)
        gradients = {}
        for wrapped in (True, False):
            torch.manual_seed(0)  # the same initial weights on both ranks
            model = ModelLens(TINY, vocab, text_dim=8).eval()  # no dropout: the data alone differs
            net = DistributedDataParallel(model) if wrapped else model
            ensemble_loss(net, batch, TrainConfig()).backward()
            local = torch.cat([p.grad.flatten() for p in model.parameters()])
            gathered = [torch.zeros_like(local) for _ in range(world)]
            dist.all_gather(gathered, local)
            gradients[wrapped] = gathered
        # The training loop itself under DDP: different shards per rank, identical weights after training.
        corpus = toy_corpus()
        trained = train(corpus, None, HashEmbedder(), tiny(max_epochs=1, groups_per_batch=4), seed=0)
        weights = torch.cat([p.detach().flatten() for p in trained.model.parameters()])
        gathered = [torch.zeros_like(weights) for _ in range(world)]
        dist.all_gather(gathered, weights)
        if rank == 0:
            torch.save({"ddp": gradients[True], "plain": gradients[False], "trained": gathered}, out)
        dist.barrier()  # neither rank tears the group down while the other still uses it (a gloo abort seen in CI)
    finally:
        dist.destroy_process_group()


def test_ddp_gradients_identical_across_ranks(tmp_path: Path):
    out = tmp_path / "gradients.pt"
    mp.spawn(_ddp_worker, args=(2, free_ports(1)[0], out), nprocs=2, join=True)
    result = torch.load(out)
    ddp, plain, trained = result["ddp"], result["plain"], result["trained"]
    torch.testing.assert_close(ddp[0], ddp[1], atol=1e-6, rtol=0)
    assert not torch.allclose(plain[0], plain[1])  # without the wrapper the ranks disagree: the test can fail
    torch.testing.assert_close((plain[0] + plain[1]) / 2, ddp[0], atol=1e-5, rtol=1e-4)  # DDP averages the ranks
    torch.testing.assert_close(trained[0], trained[1], atol=0, rtol=0)
