import pytest
import torch

from ja_pretrain.training.masking import IGNORE_INDEX, draw_mask_noise, mask_tokens

MASK, VOCAB, LOW = 4, 1000, 5


def make_batch(rows=512, length=128, seed=0, word_rate=0.45):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(LOW, VOCAB, (rows, length), generator=g)
    lengths = torch.randint(length // 4, length, (rows,), generator=g)
    pos = torch.arange(length)[None, :]
    ids[:, 0] = 2
    ids[pos == (lengths[:, None] - 1)] = 3
    ids[pos >= lengths[:, None]] = 0
    special = ids < LOW
    word_start = (torch.rand(rows, length, generator=g) < word_rate) | special
    return ids, special, word_start


def run(ids, special, word_start, seed=1, **kw):
    kw.setdefault("mask_probability", 0.15)
    return mask_tokens(ids, special, word_start, mask_token_id=MASK, vocab_size=VOCAB,
                       generator=torch.Generator().manual_seed(seed), random_token_low=LOW, **kw)


@pytest.mark.parametrize("whole_word", [False, True])
def test_rate_and_80_10_10_and_never_specials(whole_word):
    ids, special, word_start = make_batch()
    masked, labels = run(ids, special, word_start, whole_word=whole_word)
    chosen = labels != IGNORE_INDEX
    real = int((~special).sum())
    assert abs(int(chosen.sum()) / real - 0.15) < 0.006
    assert not (chosen & special).any()
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])  # nothing else is touched
    n = int(chosen.sum())
    to_mask = (masked[chosen] == MASK).sum().item() / n
    kept = (masked[chosen] == ids[chosen]).sum().item() / n
    assert abs(to_mask - 0.8) < 0.02
    # "kept" also holds random draws that hit the original token (1/995 of them)
    assert abs(kept - 0.1) < 0.015
    replaced = masked[chosen][(masked[chosen] != MASK) & (masked[chosen] != ids[chosen])]
    assert abs(len(replaced) / n - 0.1) < 0.015
    assert int(replaced.min()) >= LOW and int(replaced.max()) < VOCAB


def test_expected_count_is_exact_for_short_rows():
    # 10 real tokens at 15%: 1.5 per row on average (1 or 2), never 0 or 3
    ids, special, word_start = make_batch(rows=4000, length=12)
    special[:] = False
    special[:, 0] = special[:, 11] = True
    _, labels = run(ids, special, word_start, seed=3)
    per_row = (labels != IGNORE_INDEX).sum(dim=1)
    assert set(per_row.tolist()) <= {1, 2}
    assert abs(per_row.float().mean().item() - 1.5) < 0.05


def test_whole_word_masking_keeps_words_whole():
    ids, special, word_start = make_batch(word_rate=0.3)
    _, labels = run(ids, special, word_start, whole_word=True, seed=7)
    chosen = labels != IGNORE_INDEX
    # a word = a start token plus the continuation tokens after it, inside real tokens
    start = word_start | special | torch.cat([torch.ones_like(special[:, :1]), special[:, :-1]], dim=1)
    word_id = start.long().cumsum(dim=1)
    whole = 0
    for row in range(ids.shape[0]):
        for w in torch.unique(word_id[row][chosen[row]]):
            members = (word_id[row] == w) & ~special[row]
            assert chosen[row][members].all(), f"row {row}: word {int(w)} masked only in part"
            whole += int(members.sum()) > 1
    assert whole > 100  # multi-token words were really chosen
    # token-level masking, by contrast, splits words
    _, token_labels = run(ids, special, word_start, whole_word=False, seed=7)
    token_chosen = token_labels != IGNORE_INDEX
    split = any(((word_id[r] == w) & ~special[r] & ~token_chosen[r]).any()
                for r in range(50) for w in torch.unique(word_id[r][token_chosen[r]]))
    assert split


def test_rows_of_the_noise_give_the_same_masks_as_the_whole_batch():
    """What makes masks independent of how rows are spread over ranks."""
    ids, special, word_start = make_batch(rows=8, length=64)
    noise = draw_mask_noise(8, 64, torch.Generator().manual_seed(5))
    kw = dict(mask_probability=0.15, mask_token_id=MASK, vocab_size=VOCAB, whole_word=True)
    full = mask_tokens(ids, special, word_start, noise=noise, **kw)
    first = mask_tokens(ids[:3], special[:3], word_start[:3], noise=noise[0:3], **kw)
    rest = mask_tokens(ids[3:], special[3:], word_start[3:], noise=noise[3:8], **kw)
    for whole, a, b in zip(full, first, rest, strict=True):
        assert torch.equal(whole, torch.cat([a, b]))


def test_same_seed_same_masks_and_electra_probabilities():
    ids, special, word_start = make_batch(rows=256)
    a = run(ids, special, word_start, seed=11)
    b = run(ids, special, word_start, seed=11)
    c = run(ids, special, word_start, seed=12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    masked, labels = run(ids, special, word_start, seed=11, replace_probs=(0.85, 0.15, 0.0))
    chosen = labels != IGNORE_INDEX
    assert ((masked[chosen] == MASK) | (masked[chosen] == ids[chosen])).all()  # no random tokens
    assert abs((masked[chosen] == MASK).float().mean().item() - 0.85) < 0.03


def test_bad_arguments():
    ids, special, word_start = make_batch(rows=2, length=16)
    with pytest.raises(ValueError, match="replace_probs"):
        run(ids, special, word_start, replace_probs=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="word_start"):
        run(ids, special, None, whole_word=True)
    with pytest.raises(ValueError, match="shape"):
        mask_tokens(ids, special, word_start, mask_probability=0.15, mask_token_id=MASK, vocab_size=VOCAB,
                    noise=draw_mask_noise(3, 16, torch.Generator().manual_seed(0)))
