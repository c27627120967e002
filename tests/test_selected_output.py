"""The last layer run past attention only where a head reads: same rows, same gradients, and the
FLOP count the MFU figure divides by matches what the model runs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ja_pretrain.config.parameters import load_parameters
from ja_pretrain.models.cpu_ops import use_cpu_ops
from ja_pretrain.models.selected_output import encode_selected
from ja_pretrain.training.masking import draw_mask_noise
from ja_pretrain.training.objectives import ObjectiveOptions, build_bert_objective, build_electra_objective

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
VOCAB = 300


def bert(nsp=False, seed=0):
    torch.manual_seed(seed)
    return build_bert_objective(load_parameters("bert-micro"), SPECIAL, VOCAB,
                                ObjectiveOptions(next_sentence_prediction=nsp))


def electra(seed=0):
    torch.manual_seed(seed)
    return build_electra_objective(load_parameters("electra-micro"), SPECIAL, VOCAB, ObjectiveOptions())


def batch(rows=6, length=64, pad_from=40, pairs=False, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCAB, (rows, length))
    ids[:, 0], ids[:, -1] = 2, 3
    attention = np.ones((rows, length), dtype=np.int64)
    ids[-1, pad_from - 1], ids[-1, pad_from:], attention[-1, pad_from:] = 3, 0, 0  # a short last row
    out = {"input_ids": ids, "attention_mask": attention, "token_type_ids": np.zeros_like(ids),
           "special_tokens_mask": ids < 5, "word_start": np.ones_like(ids, dtype=bool)}
    if pairs:
        out["next_sentence_label"] = rng.integers(0, 2, rows)
    return out


def inputs_of(objective, data, seed=1):
    rows, length = data["input_ids"].shape
    return objective.prepare(data, draw_mask_noise(rows, length, torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("padded", [False, True])
def test_rows_and_gradients_equal_the_full_encoders(padded):
    model = bert().model.bert.eval()  # no dropout: both paths then compute the same function
    use_cpu_ops(model)
    ids = torch.randint(5, VOCAB, (4, 32))
    mask = torch.ones_like(ids)
    if padded:
        mask[2, 20:] = 0
    types = torch.zeros_like(ids)
    positions = torch.tensor([0, 5, 31, 40, 77, 90, 127])

    full = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state.flatten(0, 1)[positions]
    weights = torch.randn_like(full)
    full_grads = torch.autograd.grad((full * weights).sum(), list(model.parameters()), allow_unused=True)
    selected = encode_selected(model, positions, ids, mask, types)
    grads = torch.autograd.grad((selected * weights).sum(), list(model.parameters()), allow_unused=True)

    assert selected.shape == (len(positions), model.config.hidden_size)
    torch.testing.assert_close(selected, full, rtol=1e-5, atol=1e-5)
    for (name, _), ours, theirs in zip(model.named_parameters(), grads, full_grads, strict=True):
        if theirs is None:  # the pooler: neither path reaches it
            assert ours is None, name
        else:
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6, msg=name)


def test_nsp_objective_equals_the_full_pretraining_model():
    objective = bert(nsp=True).eval()
    inputs = inputs_of(objective, batch(pairs=True))
    with torch.no_grad():
        out = objective(**inputs)
        full = objective.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                               token_type_ids=inputs["token_type_ids"])
    mlm = F.cross_entropy(full.prediction_logits.flatten(0, 1)[inputs["masked_positions"]], inputs["masked_labels"],
                          reduction="sum")
    nsp = F.cross_entropy(full.seq_relationship_logits, inputs["next_sentence_label"], reduction="sum")
    torch.testing.assert_close(out.sums["mlm"], mlm, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.sums["nsp"], nsp, rtol=1e-5, atol=1e-5)


def test_electra_encoders_give_the_rows_of_their_full_output():
    objective = electra().eval()
    inputs = inputs_of(objective, batch())
    args = (inputs["masked_input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    # electra-micro: the generator's hidden size is the embedding size, the discriminator projects
    encoders = [objective.model.generator.electra, objective.model.discriminator.electra]
    assert [hasattr(e, "embeddings_project") for e in encoders] == [False, True]
    for encoder in encoders:
        with torch.no_grad():
            full = encoder(args[0], attention_mask=args[1], token_type_ids=args[2]).last_hidden_state
            selected = encode_selected(encoder, inputs["masked_positions"], *args)
        torch.testing.assert_close(selected, full.flatten(0, 1)[inputs["masked_positions"]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build,pairs", [(bert, False), (lambda: bert(nsp=True), True), (electra, False)],
                         ids=["bert", "bert-nsp", "electra"])
def test_flops_count_the_matmuls_the_forward_runs(build, pairs):
    objective = build().train()
    use_cpu_ops(objective)  # attention as plain matmuls, which the counter sees
    inputs = inputs_of(objective, batch(pairs=pairs))
    with FlopCounterMode(display=False) as counter:
        objective(**inputs)
    assert objective.flops(inputs) == pytest.approx(3 * counter.get_total_flops(), rel=1e-9)
