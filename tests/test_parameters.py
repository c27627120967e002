import json
from fractions import Fraction

import pytest

from ja_pretrain.config.parameters import list_presets, load_parameters, parse_preset
from ja_pretrain.errors import UserError

BASE = {
    "number-of-layers": 2, "hidden-size": 64, "sequence-length": 32, "ffn-inner-hidden-size": 128,
    "attention-heads": 2, "warmup-steps": 1, "learning-rate": 1e-3, "batch-size": 4,
    "train-steps": 10, "save-steps": 5, "logging-steps": 1,
}


def test_every_shipped_preset_loads():
    names = list_presets()
    for required in ("bert-small", "electra-small", "electra-small-paper", "bert-base", "electra-base",
                     "bert-base-dist", "bert-tiny", "bert-micro", "electra-micro"):
        assert required in names
    for name in names:
        assert load_parameters(name).model_type == name


def test_generator_sizes_of_the_seed_presets():
    assert load_parameters("electra-small").generator_dims() == (256, 4, 1024)
    assert load_parameters("electra-small-paper").generator_dims() == (64, 1, 256)
    assert load_parameters("electra-base").generator_dims() == (256, 4, 1024)
    assert load_parameters("electra-small-paper").generator_size == Fraction(1, 4)
    assert not load_parameters("bert-small").is_electra


def test_tiny_bert_is_the_second_seeds_shape():
    p = load_parameters("bert-tiny")
    assert (p.number_of_layers, p.hidden_size, p.attention_heads, p.ffn_inner_hidden_size) == (6, 256, 8, 768)


def test_per_node_batch_sizes():
    p = load_parameters("bert-base-dist")
    assert [p.node_batch_size(n) for n in range(4)] == [80, 80, 48, 48]
    assert p.global_batch_size(4) == 256
    with pytest.raises(UserError, match="node_rank 4"):
        p.node_batch_size(4)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden-sise": 64}, "unknown key 'hidden-sise'"),
        ({"hidden-size": "64"}, "key 'hidden-size' must be int"),
        ({"learning-rate": "fast"}, "key 'learning-rate'"),
        ({"batch-size": {}}, "key 'batch-size' is an empty dict"),
        ({"batch-size": {"0": 8, "2": 8}}, "missing \\['1'\\]"),
        ({"generator-size": "one quarter"}, "key 'generator-size' must be a fraction"),
        ({"generator-size": "3/2"}, "key 'generator-size' must be in"),
        ({"generator-size": "1/3"}, "not a whole number"),
        ({"attention-heads": 3}, "not divisible"),
        ({"train-steps": True}, "key 'train-steps' must be int"),
    ],
)
def test_bad_presets_name_the_preset_and_key(change, message):
    raw = dict(BASE, **change)
    with pytest.raises(UserError, match=message) as info:
        parse_preset("my-model", raw)
    assert "my-model" in str(info.value)


def test_missing_key_and_unknown_preset(tmp_path):
    raw = dict(BASE)
    del raw["train-steps"]
    with pytest.raises(UserError, match="missing key 'train-steps'"):
        parse_preset("m", raw)
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"m": BASE}))
    assert load_parameters("m", path).batch_size == 4
    with pytest.raises(UserError, match="not a preset"):
        load_parameters("nope", path)
    path.write_text("{ broken")
    with pytest.raises(UserError, match="p.json:1"):
        load_parameters("m", path)


def test_configs_copy_of_the_builtin_presets_is_equal():
    """configs/parameter.json is a copy to start one's own from; the built-in file is the package's."""
    from pathlib import Path

    from ja_pretrain.resources import resource_path

    copy = Path(__file__).resolve().parents[1] / "configs" / "parameter.json"
    assert copy.read_bytes() == resource_path("parameter.json").read_bytes()


def test_a_directory_as_parameter_file_says_so(tmp_path):
    import pytest

    from ja_pretrain.config.parameters import read_parameter_file
    from ja_pretrain.errors import UserError

    with pytest.raises(UserError, match="is a directory, not a file; give the parameter.json file itself"):
        read_parameter_file(tmp_path)
