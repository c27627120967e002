"""Pretraining: masking, the objective contract, optimizer and schedule, distributed setup,
checkpoints, metrics and the trainer loop (`ja_pretrain.training.trainer.train`)."""
