"""ELECTRA joint model and objective: shared embeddings, generator sizes, masking, sampled labels."""

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ja_pretrain.config.parameters import list_presets, load_parameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.electra import electra_configs
from ja_pretrain.models.electra_checkpoint import load_electra_weights
from ja_pretrain.training.masking import draw_mask_noise
from ja_pretrain.training.objectives import ElectraObjective, ObjectiveOptions, build_electra_objective, build_objective
from ja_pretrain.training.objectives.electra import gumbel_max_sample
from ja_pretrain.training.optim import build_optimizer

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
VOCAB = 300


def micro_objective(seed=0, **options) -> ElectraObjective:
    torch.manual_seed(seed)
    return build_electra_objective(load_parameters("electra-micro"), SPECIAL, VOCAB, ObjectiveOptions(**options))


def make_batch(rows=8, length=64, seed=0, pad_from=None):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCAB, (rows, length))
    ids[:, 0], ids[:, -1] = 2, 3
    attention = np.ones((rows, length), dtype=np.int64)
    if pad_from is not None:  # the last row is short
        ids[-1, pad_from - 1] = 3
        ids[-1, pad_from:] = 0
        attention[-1, pad_from:] = 0
    word_start = rng.random((rows, length)) < 0.5
    special = ids < 5
    return {"input_ids": ids, "attention_mask": attention, "token_type_ids": np.zeros_like(ids),
            "special_tokens_mask": special, "word_start": word_start | special}


def prepared(objective, batch, seed=1):
    rows, length = batch["input_ids"].shape
    return objective.prepare(batch, draw_mask_noise(rows, length, torch.Generator().manual_seed(seed)))


def test_embeddings_are_one_module_and_the_output_layer_is_the_word_matrix():
    objective = micro_objective()
    gen, disc = objective.model.generator, objective.model.discriminator
    assert gen.electra.embeddings is disc.electra.embeddings
    with torch.no_grad():  # a change made through one network shows in the other
        gen.electra.embeddings.word_embeddings.weight[7].add_(1.0)
        gen.electra.embeddings.position_embeddings.weight[3].mul_(2.0)
        disc.electra.embeddings.LayerNorm.bias.fill_(0.25)
    assert torch.equal(disc.electra.embeddings.word_embeddings.weight[7], gen.generator_lm_head.weight[7])
    assert torch.equal(disc.electra.embeddings.position_embeddings.weight,
                       gen.electra.embeddings.position_embeddings.weight)
    assert bool((gen.electra.embeddings.LayerNorm.bias == 0.25).all())
    assert gen.generator_lm_head.weight.data_ptr() == disc.electra.embeddings.word_embeddings.weight.data_ptr()
    # The optimizer holds every tensor once, so the shared ones get one update per step.
    optimizer = build_optimizer(objective, 1e-3)
    in_optimizer = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(in_optimizer) == len({id(p) for p in in_optimizer}) == len(list(objective.parameters()))
    # The saved state holds each shared tensor once, under the discriminator.
    keys = objective.model.state_dict().keys()
    assert "discriminator.electra.embeddings.word_embeddings.weight" in keys
    assert not [k for k in keys if k.startswith("generator.electra.embeddings.") or k.endswith("lm_head.weight")]


def test_shared_tensors_stay_shared_after_a_training_step_and_a_reload(tmp_path):
    objective = micro_objective()
    x = prepared(objective, make_batch())
    optimizer = build_optimizer(objective, 1e-2)
    out = objective(**x)
    (out.sums["generator"] + out.sums["discriminator"]).backward()
    optimizer.step()
    objective.save_model(tmp_path)
    other = micro_objective(seed=5)
    other.load_model(tmp_path)
    gen, disc = other.model.generator, other.model.discriminator
    assert gen.generator_lm_head.weight is disc.electra.embeddings.word_embeddings.weight
    assert gen.electra.embeddings is disc.electra.embeddings
    for (name, a), (_, b) in zip(objective.model.state_dict().items(), other.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("preset", [p for p in list_presets() if load_parameters(p).is_electra])
def test_generator_size_arithmetic(preset):
    params = load_parameters(preset)
    gen, disc = electra_configs(params, SPECIAL, VOCAB)
    scale = Fraction(params.generator_size)
    assert disc.hidden_size == params.hidden_size and disc.num_attention_heads == params.attention_heads
    assert gen.hidden_size == params.hidden_size * scale
    assert gen.num_attention_heads == params.attention_heads * scale
    assert gen.intermediate_size == params.ffn_inner_hidden_size * scale
    assert gen.num_hidden_layers == disc.num_hidden_layers == params.number_of_layers
    assert gen.embedding_size == disc.embedding_size == (params.embedding_size or params.hidden_size)
    assert gen.max_position_embeddings == disc.max_position_embeddings == params.sequence_length
    assert gen.hidden_size % gen.num_attention_heads == 0


def test_the_issue_figures_for_the_quarter_generator():
    gen, _ = electra_configs(load_parameters("electra-small-paper"), SPECIAL, VOCAB)
    assert (gen.hidden_size, gen.num_attention_heads, gen.intermediate_size) == (64, 1, 256)


def test_projection_exists_where_embedding_and_hidden_sizes_differ():
    objective = micro_objective()  # embedding 32; discriminator hidden 64, generator hidden 32
    assert hasattr(objective.model.discriminator.electra, "embeddings_project")
    assert not hasattr(objective.model.generator.electra, "embeddings_project")


def test_build_objective_dispatches_electra_presets():
    objective = build_objective(load_parameters("electra-micro"), SPECIAL, VOCAB)
    assert objective.kind == "electra" and set(objective.loss_weights) == {"generator", "discriminator"}
    assert objective.loss_weights == {"generator": 1.0, "discriminator": 50.0}
    weighted = build_objective(load_parameters("electra-micro"), SPECIAL, VOCAB,
                               ObjectiveOptions(generator_weight=2.0, discriminator_weight=10.0))
    assert weighted.loss_weights == {"generator": 2.0, "discriminator": 10.0}


@pytest.mark.parametrize("whole_word", [False, True])
def test_masking_is_15_percent_with_85_mask_15_kept_0_random(whole_word):
    objective = micro_objective(whole_word_mask=whole_word)
    batch = make_batch(rows=400, seed=3)
    x = prepared(objective, batch)
    ids = torch.from_numpy(batch["input_ids"])
    special = torch.from_numpy(batch["special_tokens_mask"])
    positions = x["masked_positions"]
    chosen = torch.zeros(ids.numel(), dtype=torch.bool)
    chosen[positions] = True
    chosen = chosen.view_as(ids)
    assert not (chosen & special).any()
    assert abs(chosen.sum().item() / (~special).sum().item() - 0.15) < 0.006
    at_chosen = x["masked_input_ids"][chosen]
    as_mask = (at_chosen == SPECIAL["mask"]).float().mean().item()
    kept = (at_chosen == ids[chosen]).float().mean().item()
    assert abs(as_mask - 0.85) < 0.02 and abs(kept - 0.15) < 0.02
    assert as_mask + kept == pytest.approx(1.0)  # no random tokens
    assert torch.equal(x["masked_input_ids"][~chosen], ids[~chosen])
    if whole_word:  # a continuation sub-word is chosen exactly when the token before it is
        starts = torch.from_numpy(batch["word_start"])
        same_word = ~starts[:, 1:] & ~special[:, :-1] & ~special[:, 1:]
        assert bool((chosen[:, 1:] == chosen[:, :-1])[same_word].all())
        assert bool(same_word.any())


def test_loss_counts_and_forward_agree_and_padding_is_left_out():
    objective = micro_objective()
    batch = make_batch(pad_from=40)
    x = prepared(objective, batch)
    counts = objective.loss_counts(x)
    assert counts["generator"].item() == x["masked_positions"].numel()
    assert counts["discriminator"].item() == int(batch["attention_mask"].sum())
    out = objective(**x)
    assert {k: int(v) for k, v in out.counts.items()} == {k: int(v) for k, v in counts.items()}
    assert out.sums["generator"].dtype == out.sums["discriminator"].dtype == torch.float32


def test_discriminator_labels_are_sampled_differs_from_original():
    objective = micro_objective()
    objective.eval()
    batch = make_batch(pad_from=48)
    x = prepared(objective, batch)
    ids = torch.from_numpy(batch["input_ids"])
    positions = x["masked_positions"]
    # Make the generator certain of one token, which is the original at some masked positions:
    # there the sample equals the original and must count as not replaced.
    favourite = int(ids.flatten()[positions[0]])
    with torch.no_grad():
        objective.model.generator.generator_lm_head.bias[favourite] = 1e4
    seen = {}
    hook = objective.model.discriminator.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(ids=args[0].clone()), with_kwargs=True)
    out = objective(**x)
    hook.remove()
    corrupted = seen["ids"]
    flat = corrupted.flatten()
    assert bool((flat[positions] == favourite).all())
    outside = torch.ones(ids.numel(), dtype=torch.bool)
    outside[positions] = False
    assert torch.equal(flat[outside], ids.flatten()[outside])
    real = torch.from_numpy(batch["attention_mask"]).bool()
    labels = (corrupted != ids) & real
    expected_replaced = int((ids.flatten()[positions] != favourite).sum())
    assert int(labels.sum()) == expected_replaced == int(out.metrics["discriminator_recall"][1])
    assert expected_replaced < positions.numel()  # the equal-to-original case happened
    assert int(out.metrics["replaced_fraction"][0]) == expected_replaced
    # The discriminator loss is the BCE of its logits against those labels over real tokens.
    logits = objective.model.discriminator(corrupted, attention_mask=x["attention_mask"]).logits.float()
    bce = F.binary_cross_entropy_with_logits(logits[real], labels[real].float(), reduction="sum")
    assert out.sums["discriminator"].item() == pytest.approx(bce.item(), rel=1e-5)
    predicted = (logits > 0) & real
    assert int(out.metrics["discriminator_precision"][1]) == int(predicted.sum())
    assert int(out.metrics["discriminator_accuracy"][0]) == int(((predicted == labels) & real).sum())


def test_generator_loss_is_summed_cross_entropy_at_masked_positions_only():
    objective = micro_objective()
    objective.eval()
    x = prepared(objective, make_batch())
    out = objective(**x)
    logits = objective.model.generator(x["masked_input_ids"]).logits.flatten(0, 1)[x["masked_positions"]]
    targets = x["input_ids"].flatten()[x["masked_positions"]]
    expected = F.cross_entropy(logits.float(), targets, reduction="sum")
    assert out.sums["generator"].item() == pytest.approx(expected.item(), rel=1e-5)
    correct = int((logits.argmax(-1) == targets).sum())
    assert int(out.metrics["generator_accuracy"][0]) == correct


def test_gumbel_max_draws_follow_the_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -30.0]]).repeat(40000, 1)
    draws = gumbel_max_sample(logits, torch.rand(logits.shape, generator=torch.Generator().manual_seed(0)))
    freq = torch.bincount(draws, minlength=5).float() / draws.numel()
    assert torch.allclose(freq, torch.softmax(logits[0], -1), atol=0.01)
    assert freq[4] == 0


def test_samples_depend_only_on_batch_and_noise():
    objective = micro_objective()
    objective.eval()
    batch = make_batch()
    a = objective(**prepared(objective, batch, seed=1))
    torch.manual_seed(123)  # the global RNG plays no part
    b = objective(**prepared(objective, batch, seed=1))
    c = objective(**prepared(objective, batch, seed=2))
    assert torch.equal(a.sums["discriminator"], b.sums["discriminator"])
    assert not torch.equal(a.sums["discriminator"], c.sums["discriminator"])


def test_a_sequence_gets_the_same_replacements_in_any_batch():
    objective = micro_objective()
    objective.eval()
    batch = make_batch(rows=8, pad_from=50)
    noise = draw_mask_noise(8, 64, torch.Generator().manual_seed(4))
    seen = []
    hook = objective.model.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    objective(**objective.prepare(batch, noise))
    part = {k: v[3:] for k, v in batch.items()}  # rows 3..7 alone, as another rank would hold them
    objective(**objective.prepare(part, noise[3:]))
    hook.remove()
    whole, alone = seen
    assert torch.equal(whole[3:], alone)
    assert not torch.equal(whole[3:], torch.from_numpy(batch["input_ids"][3:]))  # something was replaced


def test_loading_weights_of_another_shape_is_a_clear_error(tmp_path):
    micro_objective().save_model(tmp_path / "micro")
    bigger = build_electra_objective(load_parameters("electra-micro").replace(hidden_size=128, attention_heads=2),
                                     SPECIAL, VOCAB)
    with pytest.raises(UserError, match="another shape.*hidden_size"):
        bigger.load_model(tmp_path / "micro")
    with pytest.raises(UserError, match="neither a joint ELECTRA model"):
        load_electra_weights(bigger.model, tmp_path)
