"""extract-electra: final/ and checkpoints split into Auto-loadable halves with equal logits."""

import json

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer, BertJapaneseTokenizer

from ja_pretrain.cli import main
from ja_pretrain.config.parameters import load_parameters
from ja_pretrain.export.electra import export_electra_final, extract_electra
from ja_pretrain.training.objectives import ObjectiveOptions, build_electra_objective

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
CHARS = "日本語の文章を学習するためのテキストです。東京大阪京都経済金融市場株式会社"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(CHARS))
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    out = root / "tokenizer"
    BertJapaneseTokenizer(str(root / "vocab.txt"), word_tokenizer_type="mecab", subword_tokenizer_type="character",
                          mecab_kwargs={"mecab_dic": "ipadic"}).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenizer_dir):
    """A model dir with final/ and checkpoint-3/ of an electra-micro objective (weights perturbed)."""
    params = load_parameters("electra-micro")
    vocab_size = len((tokenizer_dir / "vocab.txt").read_text(encoding="utf-8").split())
    torch.manual_seed(0)
    objective = build_electra_objective(params, SPECIAL, vocab_size)
    with torch.no_grad():
        for p in objective.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model_dir = tmp_path_factory.mktemp("model")
    state = {"step": 3, "tokens_seen": 999, "global_batch": 16, "accumulation_steps": 1, "precision": "fp32",
             "world_size": 1}
    objective.save_model(model_dir / "checkpoint-3")
    (model_dir / "checkpoint-3" / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    export_electra_final(objective, model_dir / "final", tokenizer_dir=tokenizer_dir, params=params,
                         options=ObjectiveOptions(), dataset_dir=model_dir / "no-dataset", train_state=state,
                         last_train={"loss": 3.5, "generator_loss": 2.0}, last_valid={})
    objective.eval()
    return objective, model_dir


def probe(vocab_size):
    ids = torch.randint(5, vocab_size, (3, 64), generator=torch.Generator().manual_seed(1))
    attention = torch.ones_like(ids)
    attention[2, 20:] = 0
    return {"input_ids": ids, "attention_mask": attention, "token_type_ids": torch.zeros_like(ids)}


def test_extracted_halves_load_with_auto_classes_and_give_the_joint_logits(trained, tmp_path):
    objective, model_dir = trained
    out = tmp_path / "electra"
    rc = main(["extract-electra", "--input-dir", str(model_dir / "final"), "--output-dir", str(out),
               "--model-type", "electra-micro", "--generator", "--discriminator"])
    assert rc == 0
    generator = AutoModelForMaskedLM.from_pretrained(out / "generator").eval()
    discriminator = AutoModelForPreTraining.from_pretrained(out / "discriminator").eval()
    assert type(generator).__name__ == "ElectraForMaskedLM"
    assert type(discriminator).__name__ == "ElectraForPreTraining"
    assert generator.config.max_position_embeddings == discriminator.config.max_position_embeddings == 64
    x = probe(generator.config.vocab_size)
    with torch.no_grad():  # equal up to a SIMD reduction order that memory alignment can change
        torch.testing.assert_close(generator(**x).logits, objective.model.generator(**x).logits, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(discriminator(**x).logits, objective.model.discriminator(**x).logits,
                                   rtol=1e-6, atol=1e-6)
    # The generator's output layer is still its word-embedding matrix after loading.
    assert generator.generator_lm_head.weight.data_ptr() == generator.electra.embeddings.word_embeddings.weight.data_ptr()
    for half in ("generator", "discriminator"):
        tokenizer = AutoTokenizer.from_pretrained(out / half)
        assert type(tokenizer).__name__ == "BertJapaneseTokenizer"
        assert tokenizer.convert_tokens_to_ids("[MASK]") == SPECIAL["mask"]
        card = (out / half / "README.md").read_text(encoding="utf-8")
        assert half in card and "electra-micro" in card
        assert not (out / half / "trainer_state.json").exists()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == "extract-electra" and manifest["counts"]["step"] == 3


def test_checkpoint_takes_tokenizer_from_final_and_one_half_can_be_asked_for(trained, tmp_path):
    objective, model_dir = trained
    written = extract_electra(model_dir / "checkpoint-3", tmp_path / "out", discriminator=False)
    assert set(written) == {"generator"} and not (tmp_path / "out" / "discriminator").exists()
    assert (tmp_path / "out" / "generator" / "vocab.txt").is_file()
    assert "steps | 3" in (tmp_path / "out" / "generator" / "README.md").read_text(encoding="utf-8")


def test_checkpoint_without_tokenizer_needs_tokenizer_dir(trained, tmp_path, tokenizer_dir, capsys):
    objective, model_dir = trained
    lone = tmp_path / "run" / "checkpoint-3"
    objective.save_model(lone)
    (lone / "trainer_state.json").write_text(json.dumps({"step": 3}), encoding="utf-8")
    assert main(["extract-electra", "--input_dir", str(lone), "--output_dir", str(tmp_path / "o")]) == 2
    assert "--tokenizer_dir" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(["extract-electra", "--input_dir", str(tmp_path / "run"), "--output_dir", str(tmp_path / "o"),
                 "--tokenizer_dir", str(tokenizer_dir)]) == 0
    assert (tmp_path / "o" / "discriminator" / "model.safetensors").is_file()


def test_bad_inputs_are_clear_errors_and_leave_nothing(trained, tmp_path, capsys):
    objective, model_dir = trained
    out = tmp_path / "out"
    # A preset of another shape.
    assert main(["extract-electra", "--input_dir", str(model_dir / "final"), "--output_dir", str(out),
                 "--model_type", "electra-small"]) == 2
    err = capsys.readouterr().err
    assert "does not describe" in err and "hidden-size" in err
    # Not an ELECTRA checkpoint: a BERT model dir.
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    assert main(["extract-electra", "--input_dir", str(bert), "--output_dir", str(out)]) == 2
    assert "not a joint ELECTRA checkpoint" in capsys.readouterr().err
    # Weights missing.
    broken = tmp_path / "broken" / "checkpoint-1"
    objective.save_model(broken)
    (broken / "model.safetensors").unlink()
    assert main(["extract-electra", "--input_dir", str(broken), "--output_dir", str(out),
                 "--tokenizer_dir", str(model_dir / "final")]) == 2
    assert "no model.safetensors" in capsys.readouterr().err
    assert main(["extract-electra", "--input_dir", str(tmp_path / "nowhere"), "--output_dir", str(out)]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("source", ["final", "pair"])
def test_continued_pretraining_starts_from_the_saved_weights(trained, tmp_path, source):
    objective, model_dir = trained
    if source == "pair":
        extract_electra(model_dir / "final", tmp_path / "pair")
        where = tmp_path / "pair"
    else:
        where = model_dir  # a MODEL_DIR with final/ is accepted too
    vocab_size = objective.model.generator.config.vocab_size
    fresh = build_electra_objective(load_parameters("electra-micro"), SPECIAL, vocab_size)
    fresh.load_model(where)
    fresh.eval()
    gen, disc = fresh.model.generator, fresh.model.discriminator
    assert gen.electra.embeddings is disc.electra.embeddings
    assert gen.generator_lm_head.weight is disc.electra.embeddings.word_embeddings.weight
    for (name, a), (_, b) in zip(objective.model.state_dict().items(), fresh.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_output_of_another_kind_is_refused_and_left_as_it_was(trained, tmp_path, capsys):
    _, model_dir = trained
    out = tmp_path / "mine"
    (out / "generator").mkdir(parents=True)
    (out / "generator" / "notes.txt").write_text("my notes", encoding="utf-8")
    assert main(["extract-electra", "--input_dir", str(model_dir / "final"), "--output_dir", str(out)]) == 2
    assert "not an earlier output of this command" in capsys.readouterr().err
    assert (out / "generator" / "notes.txt").read_text(encoding="utf-8") == "my notes"
    assert sorted(p.name for p in out.rglob("*")) == ["generator", "notes.txt"]


def test_output_is_replaced_as_one_unit(trained, tmp_path, monkeypatch):
    """A failure while writing the second half leaves the earlier output whole: both halves and
    its manifest from the first run, nothing of the second."""
    _, model_dir = trained
    out = tmp_path / "pair"
    extract_electra(model_dir / "checkpoint-3", out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    import ja_pretrain.export.electra as electra

    real_verify = electra._verify

    def fail_on_discriminator(saved_dir, net, auto_name, role):
        if role == "discriminator":
            raise KeyboardInterrupt  # as a Ctrl-C between the halves would
        return real_verify(saved_dir, net, auto_name, role)

    monkeypatch.setattr(electra, "_verify", fail_on_discriminator)
    with pytest.raises(KeyboardInterrupt):
        extract_electra(model_dir / "final", out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pair.tmp")] == []


def test_one_half_after_the_other_keeps_both_from_the_same_checkpoint(trained, tmp_path):
    _, model_dir = trained
    out = tmp_path / "pair"
    extract_electra(model_dir / "final", out, discriminator=False)
    extract_electra(model_dir / "final", out, generator=False)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["options"]["generator"] and manifest["options"]["discriminator"]
    assert (out / "generator" / "model.safetensors").is_file() and (out / "discriminator" / "model.safetensors").is_file()
    # From another checkpoint, the earlier half is not kept: it would not match the manifest.
    other = tmp_path / "other" / "checkpoint-9"
    objective, _ = trained
    objective.save_model(other)
    (other / "trainer_state.json").write_text(json.dumps({"step": 9}), encoding="utf-8")
    import safetensors.torch as st

    weights = st.load_file(other / "model.safetensors")
    first = next(iter(weights))
    weights[first] = weights[first] + 1.0
    st.save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    extract_electra(other, out, generator=False, tokenizer_dir=model_dir / "final")
    assert not (out / "generator").exists() and (out / "discriminator").is_dir()
