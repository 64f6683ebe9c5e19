"""The encoder training loop: one step function per objective shared by every launcher, checkpoints with
exact resume (model, optimiser, schedule, step; the reader restarts at the same batch), metrics on rank 0.

Objectives, the seed's three feature models: `contrastive` (cont-pmap: the pmap-weighted loss on every
patch, no labels), `contrastive-label` (cont-sup: the same loss with one-hot label vectors as p, i.e.
SupCon, on the labelled patches) and `supervised` (sup: cross-entropy on the labelled patches through a
linear classifier). The saved encoder has the same architecture either way; the random-initialised
baseline is `model.RANDOM_INIT`."""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cytolake.atlas.classes import Classes, classes_of
from cytolake.config import Settings, TrainSettings
from cytolake.lake import Lake
from cytolake.train.augment import Augment, batch_generator
from cytolake.train.loss import anchor_losses
from cytolake.train.model import Encoder, build_encoder, save_atomic, save_encoder, to_input, with_layout
from cytolake.train.plan import TrainPlan, plan_training
from cytolake.train.reader import PatchStream, snapshot_units


def supervised_loss_step(model, classifier, x: torch.Tensor, y: torch.Tensor, dist,
                         autocast_dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the area label on this rank's batch; (loss to backpropagate, global mean loss)."""
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        logits = classifier(model.features(x))
    loss = nn.functional.cross_entropy(logits.float(), y)
    return loss, dist.sum(loss.detach()) / dist.world


def contrastive_loss_step(model, x: torch.Tensor, p: torch.Tensor, dist, tau: float, include_self_weight: bool = True,
                          autocast_dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and the distributed pmap loss on this rank's share of the global batch.

    Returns (loss to backpropagate on this rank, the global loss value). The per-rank loss is scaled so
    that averaging the gradients over ranks gives exactly the gradient of the single-process loss on
    the concatenated batch: L = sum of valid anchors' L_i / number of valid anchors, globally.
    """
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        _, z = model(x)
    z = z.float()
    z_all, p_all = dist.gather(z), dist.gather_nograd(p)
    losses, valid = anchor_losses(z, p, z_all, p_all, dist.rank * x.shape[0], tau, include_self_weight)
    n_valid = dist.sum(valid.sum().float().detach()).clamp(min=1.0)
    loss = losses.sum() * dist.world / n_valid
    return loss, dist.sum(loss.detach()) / dist.world


def lr_at(step: int, total: int, t: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to zero, as a factor of t.lr."""
    if step < t.warmup_steps:
        return (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, total - t.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class _Training:
    """What a run trains, averages and checkpoints: the encoder, and the classifier when supervised."""

    model: Encoder
    classifier: nn.Linear | None
    net: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR

    def state(self, step: int) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "step": step,
                "classifier": None if self.classifier is None else self.classifier.state_dict()}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.classifier is not None:
            self.classifier.load_state_dict(state["classifier"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])


def training_layout(device: torch.device) -> str:
    """The encoder's memory layout for training (model.with_layout): channels-last on a GPU, where it ran well
    ahead of the default layout at the reference's 2048 px (benchmarks/results/gpu.md, "GPU figures")."""
    return "channels_last" if device.type == "cuda" else "contiguous"


def _training(t: TrainSettings, n_classes: int, total: int, device: torch.device) -> _Training:
    model = with_layout(build_encoder(t).to(device), training_layout(device))
    classifier = nn.Linear(model.feature_dim, n_classes).to(device) if t.objective == "supervised" else None
    net = nn.ModuleDict({"encoder": model, "classifier": classifier}) if classifier is not None else model
    opt = torch.optim.AdamW(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return _Training(model, classifier, net, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, t)))


def _targets(classes: Classes, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The class set as tensors: (areas x classes membership, class index of each area)."""
    return torch.from_numpy(classes.membership()).to(device), torch.from_numpy(classes.of_area).to(device)


def _step(tr: _Training, t: TrainSettings, batch: dict, epoch: int, targets: tuple[torch.Tensor, torch.Tensor],
          augment, dist, device: torch.device, autocast) -> torch.Tensor:
    """One optimiser step on this rank's share of a global batch; the global loss. Labels and pmap vectors
    enter as classes (`targets`: atlas/classes.py), so merged hemispheres are one area to every objective."""
    membership, of_area = targets
    x = to_input(batch["image"].to(device, non_blocking=True))
    if augment is not None:
        x = augment(x, batch_generator(t.seed, epoch, dist.rank, batch["step"], device))
    x = x.contiguous(memory_format=tr.model.input_layout)
    if tr.classifier is not None:
        label = of_area[batch["label"].to(device).long()]
        loss, global_loss = supervised_loss_step(tr.model, tr.classifier, x, label, dist, autocast)
    else:
        p = (batch["pmap"].to(device) @ membership if t.objective == "contrastive"
             else nn.functional.one_hot(of_area[batch["label"].to(device).long()], len(membership[0])).float())
        loss, global_loss = contrastive_loss_step(tr.model, x, p.to(device), dist, t.tau, t.include_self_weight,
                                                  autocast)
    tr.opt.zero_grad(set_to_none=True)
    loss.backward()
    dist.average_gradients(tr.net)
    tr.opt.step()
    tr.sched.step()
    return global_loss


class _Record:
    """Rank 0's account of a run: metrics.csv, TensorBoard, the log and the checkpoint."""

    def __init__(self, out: Path, t: TrainSettings, plan: TrainPlan, world: int, log):
        from torch.utils.tensorboard import SummaryWriter

        self.out, self.t, self.plan, self.world, self.log = out, t, plan, world, log
        _keep_metrics_through(out / "metrics.csv", plan.start)
        # the same for TensorBoard: events past the checkpoint's step are dropped when this run logs its first
        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=plan.start + 1 if plan.resume else None)
        self.t0 = time.perf_counter()

    def step(self, tr: _Training, step: int, epoch: int, loss: torch.Tensor) -> None:
        t, total = self.t, self.plan.total
        row = {"step": step, "epoch": epoch, "loss": float(loss), "lr": tr.sched.get_last_lr()[0],
               "samples_per_s": (step - self.plan.start) * t.batch_size * self.world / (time.perf_counter() - self.t0)}
        path = self.out / "metrics.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        self.writer.add_scalar("loss", row["loss"], step)
        self.writer.add_scalar("lr", row["lr"], step)
        if step % 10 == 0 or step == total:
            self.log(f"step {step}/{total} epoch {epoch} loss {row['loss']:.4f} lr {row['lr']:.2e} "
                     f"{row['samples_per_s']:.1f} samples/s")
        if step % t.checkpoint_every == 0 or step == total:
            save_atomic(tr.state(step), self.out / "checkpoint.pt")


def _keep_metrics_through(path: Path, step: int) -> None:
    """metrics.csv follows the checkpoint: its rows after `step` go (a run killed between two checkpoints
    logged steps that its resumption does again), so each step is listed once. Rewritten whole under a
    temporary name, so a kill here leaves the old file or the new one."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= step]
    if len(kept) == len(rows):
        return
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(kept)
    os.replace(tmp, path)


def _train(tr: _Training, t: TrainSettings, plan: TrainPlan, stream: PatchStream, classes: Classes, dist,
           device: torch.device, record: _Record | None) -> int:
    """The plan's remaining steps; returns the step reached."""
    augment = Augment(brightness=t.augment_brightness, contrast=t.augment_contrast) if t.augment else None
    autocast = torch.bfloat16 if device.type == "cuda" and t.bf16 else None
    targets = _targets(classes, device)
    tr.net.train()
    step = plan.start
    for epoch, first, _ in plan.segments:
        stream.set_epoch(epoch, first)
        for batch in stream.batches(t.workers):
            loss = _step(tr, t, batch, epoch, targets, augment, dist, device, autocast)
            step += 1
            if record is not None:
                record.step(tr, step, epoch, loss)
            if step >= plan.total:
                break
    return step


def run_train_contrastive(settings: Settings, dist, log=print) -> Path:
    """Train (or resume) the encoder; returns the model folder `paths.models/<model_version>/`."""
    t = settings.train
    torch.manual_seed(t.seed)
    out = Path(settings.paths.models) / t.model_version
    if dist.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    lake = Lake(settings.paths.lake)
    classes = classes_of(lake.read("areas", ["area_index", "name", "hemisphere"]), settings.atlas.merge_hemispheres)
    units = snapshot_units(lake, splits=list(t.splits), brains=list(t.brains) or None, labelled=t.objective != "contrastive")
    stream = PatchStream(units, t.batch_size, dist.rank, dist.world, t.seed, t.shuffle_buffer, drop_last=True)
    device = torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    ckpt = out / "checkpoint.pt"
    state = torch.load(ckpt, map_location=device, weights_only=False) if ckpt.is_file() else None
    plan = plan_training(t, stream.batches_per_epoch(), dist.world, None if state is None else state["step"])
    tr = _training(t, len(classes), plan.total, device)
    if plan.resume:
        tr.load(state)
        log(f"resuming {t.model_version} at step {plan.start}")
    dist.broadcast_parameters(tr.net)
    record = _Record(out, t, plan, dist.world, log) if dist.rank == 0 else None
    if record is not None:
        log(f"training {t.model_version} ({t.objective}): {dist.world} process(es) ({dist.name}), {plan.per_epoch} "
            f"steps/epoch, {plan.total} steps, global batch {t.batch_size * dist.world}, on {device}")
    step = _train(tr, t, plan, stream, classes, dist, device, record)
    if record is not None:
        save_encoder(out, tr.model, t, dist.world, step)
        record.writer.close()
        log(f"encoder saved to {out / 'encoder.pt'}")
    dist.barrier()
    return out
