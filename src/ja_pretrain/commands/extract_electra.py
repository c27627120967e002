"""`ja-pretrain extract-electra`: split a joint ELECTRA checkpoint into generator and discriminator."""

from __future__ import annotations

import argparse

from ja_pretrain.utils.options import add_option

NAME = "extract-electra"
HELP = "split an ELECTRA checkpoint or final/ into OUT/generator and OUT/discriminator Hugging Face models"
DESCRIPTION = """\
run-pretraining trains an ELECTRA preset as one joint model (generator and discriminator sharing
their embeddings) and saves it that way in MODEL_DIR/checkpoint-STEP/ and MODEL_DIR/final/.
This command writes the two halves as standalone Hugging Face models:

  OUT/generator/       ElectraForMaskedLM    (AutoModelForMaskedLM)
  OUT/discriminator/   ElectraForPreTraining (AutoModelForPreTraining; the one to fine-tune)

each with the tokenizer files, a README.md model card and max_position_embeddings equal to the
trained sequence length. Each half is loaded back and checked to give the trained model's
logits before it is put in place; OUT/manifest.json is written last.

--input_dir may be a checkpoint-STEP/ or final/ directory, or MODEL_DIR itself (final/ if it
exists, else the latest checkpoint). Checkpoints hold no tokenizer files: they are taken from
MODEL_DIR/final/ when it exists, else give --tokenizer_dir. --model_type/--parameter_file are
optional (the preset is saved with the checkpoint); when given they must match it.
--generator/--discriminator choose the halves; with neither, both are written.

examples:
  ja-pretrain extract-electra --input_dir run/model/final --output_dir run/electra
  ja-pretrain extract-electra --input_dir ./model/electra/checkpoint-1000000 \\
      --output_dir ./model/electra/extracted-1000000 --parameter_file parameter.json \\
      --model_type electra-small --generator --discriminator --tokenizer_dir run/tokenizer
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_option(p, "--input_dir", "--input-dir", required=True,
                   help="checkpoint-STEP/ or final/ of an ELECTRA run (or the MODEL_DIR)")
    add_option(p, "--output_dir", "--output-dir", required=True, help="writes OUT/generator and OUT/discriminator")
    add_option(p, "--parameter_file", "--parameter-file", help="parameter.json (default: built-in); checked only")
    add_option(p, "--model_type", "--model-type", help="preset the model was trained with; checked against the checkpoint")
    add_option(p, "--generator", action="store_true", help="write OUT/generator")
    add_option(p, "--discriminator", action="store_true", help="write OUT/discriminator")
    add_option(p, "--tokenizer_dir", "--tokenizer-dir",
                   help="tokenizer to copy into the outputs (default: from the input or MODEL_DIR/final)")


def run(args: argparse.Namespace) -> int:
    from ja_pretrain.export.electra import extract_electra
    from ja_pretrain.utils.locks import exclusive

    both = not (args.generator or args.discriminator)
    with exclusive(args.output_dir, f"--output_dir {args.output_dir}", replaced=True):
        written = extract_electra(
            args.input_dir, args.output_dir, parameter_file=args.parameter_file, model_type=args.model_type,
            generator=args.generator or both, discriminator=args.discriminator or both,
            tokenizer_dir=args.tokenizer_dir,
        )
    print(f"extract-electra: wrote {', '.join(str(p) for p in written.values())} (logits checked against the checkpoint)")
    return 0
