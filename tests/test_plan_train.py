"""The training run's plan: steps, resume and the batches still to see; no torch, no lake."""

from pathlib import Path

import pytest

from cytolake.config import load_config
from cytolake.train.plan import plan_training

T = load_config(Path(__file__).resolve().parents[1] / "conf" / "test.yaml").train


def train(**kw):
    return T.model_copy(update=kw)


def test_a_run_without_a_checkpoint_starts_at_step_zero_and_sees_every_epoch_whole():
    p = plan_training(train(epochs=3, max_steps=None), per_epoch=4, world=1, checkpoint_step=None)
    assert (p.total, p.start, p.resume) == (12, 0, False)
    assert p.segments == ((0, 0, 4), (1, 0, 4), (2, 0, 4))


def test_max_steps_cuts_the_run_inside_an_epoch_and_never_lengthens_it():
    assert plan_training(train(epochs=3, max_steps=6), 4, 1, None).segments == ((0, 0, 4), (1, 0, 2))
    assert plan_training(train(epochs=1, max_steps=100), 4, 1, None).total == 4


def test_a_checkpoint_resumes_at_its_step_at_the_same_batch_of_its_epoch():
    p = plan_training(train(epochs=3, max_steps=None), 4, 1, checkpoint_step=6)
    assert (p.start, p.resume) == (6, True)
    assert p.segments == ((1, 2, 2), (2, 0, 4))
    assert sum(n for _, _, n in p.segments) == p.total - p.start


def test_a_checkpoint_at_an_epoch_boundary_starts_the_next_epoch_at_its_first_batch():
    assert plan_training(train(epochs=3, max_steps=None), 4, 1, 4).segments == ((1, 0, 4), (2, 0, 4))


def test_a_finished_run_resumes_with_nothing_left_to_train():
    p = plan_training(train(epochs=2, max_steps=None), 4, 1, 8)
    assert p.resume and p.segments == ()


def test_no_full_batch_is_refused_and_names_the_batch_and_splits():
    with pytest.raises(RuntimeError, match=rf"no full batch of {T.batch_size} x 2 patches in splits"):
        plan_training(T, 0, 2, None)
