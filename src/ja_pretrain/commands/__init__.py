"""The subcommands: each module parses its flags and calls one function of the layers below.

Their `run` functions import the layers they call inside the function, on purpose: `ja-pretrain
--help` and the pipeline's config check build every parser, and should not import torch and
transformers to do it.
"""
