"""The train stage's compute: the encoder's training loop over the Arrow batches of `train/reader.py`, which
lives in `train/trainer.py` (one step function per objective, the learner that is trained and checkpointed,
rank 0's record). `train/job.py` plans the steps left and wires it."""

from cytolake.train.trainer import Learner, Record, new_learner, run_steps

__all__ = ["Learner", "Record", "new_learner", "run_steps"]
