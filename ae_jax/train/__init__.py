"""Training: run identity, the training loop (one run or several arms), checkpoints, metrics, the judge."""
