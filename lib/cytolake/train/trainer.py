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
import time
from pathlib import Path

import torch
from torch import nn

from cytolake.config import Settings, TrainSettings
from cytolake.lake import Lake
from cytolake.train.augment import Augment, batch_generator
from cytolake.train.loss import anchor_losses
from cytolake.train.model import build_encoder, save_atomic, save_encoder, to_input
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


def run_train_contrastive(settings: Settings, dist, log=print) -> Path:
    """Train (or resume) the encoder; returns the model folder `paths.models/<model_version>/`."""
    t = settings.train
    torch.manual_seed(t.seed)
    out = Path(settings.paths.models) / t.model_version
    if dist.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    lake = Lake(settings.paths.lake)
    supervised = t.objective == "supervised"
    n_areas = lake.read("areas", ["area_index"]).num_rows
    units = snapshot_units(lake, splits=list(t.splits), brains=list(t.brains) or None, labelled=t.objective != "contrastive")
    stream = PatchStream(units, t.batch_size, dist.rank, dist.world, t.seed, t.shuffle_buffer, drop_last=True)
    augment = Augment(brightness=t.augment_brightness, contrast=t.augment_contrast) if t.augment else None
    per_epoch = stream.batches_per_epoch()
    if per_epoch == 0:
        raise RuntimeError(f"no full batch of {t.batch_size} x {dist.world} patches in splits {list(t.splits)}: tile first")
    total = min(t.max_steps or per_epoch * t.epochs, per_epoch * t.epochs)
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{dist.local_rank}" if cuda else "cpu")
    model = build_encoder(t).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    classifier = nn.Linear(model.feature_dim, n_areas).to(device) if supervised else None
    # what is trained, averaged and checkpointed: the encoder, and the classifier when supervised
    net = nn.ModuleDict({"encoder": model, "classifier": classifier}) if supervised else model
    opt = torch.optim.AdamW(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, t))
    step = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        if supervised:
            classifier.load_state_dict(state["classifier"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = state["step"]
        log(f"resuming {t.model_version} at step {step}")
    dist.broadcast_parameters(net)
    autocast = torch.bfloat16 if cuda and t.bf16 else None
    writer = None
    if dist.rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
        log(f"training {t.model_version} ({t.objective}): {dist.world} process(es) ({dist.name}), {per_epoch} steps/epoch, "
            f"{total} steps, global batch {t.batch_size * dist.world}, on {device}")
    metrics_path = out / "metrics.csv"
    net.train()
    t0, done = time.perf_counter(), step
    while step < total:
        epoch, start = divmod(step, per_epoch)
        stream.set_epoch(epoch, start)
        for batch in stream.batches(t.workers):
            x = to_input(batch["image"].to(device, non_blocking=True))
            if augment is not None:
                x = augment(x, batch_generator(t.seed, epoch, dist.rank, batch["step"], device))
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            if supervised:
                loss, global_loss = supervised_loss_step(model, classifier, x, batch["label"].to(device), dist, autocast)
            else:
                p = (batch["pmap"] if t.objective == "contrastive"
                     else nn.functional.one_hot(batch["label"].long(), n_areas).float())
                loss, global_loss = contrastive_loss_step(model, x, p.to(device), dist, t.tau, t.include_self_weight,
                                                          autocast)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            dist.average_gradients(net)
            opt.step()
            sched.step()
            step += 1
            if dist.rank == 0:
                row = {"step": step, "epoch": epoch, "loss": float(global_loss), "lr": sched.get_last_lr()[0],
                       "samples_per_s": (step - done) * t.batch_size * dist.world / (time.perf_counter() - t0)}
                new = not metrics_path.is_file()
                with open(metrics_path, "a", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(row))
                    if new:
                        w.writeheader()
                    w.writerow(row)
                writer.add_scalar("loss", row["loss"], step)
                writer.add_scalar("lr", row["lr"], step)
                if step % 10 == 0 or step == total:
                    log(f"step {step}/{total} epoch {epoch} loss {row['loss']:.4f} lr {row['lr']:.2e} "
                        f"{row['samples_per_s']:.1f} samples/s")
                if step % t.checkpoint_every == 0 or step == total:
                    save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "scheduler": sched.state_dict(), "step": step,
                                 "classifier": classifier.state_dict() if supervised else None}, ckpt)
            if step >= total:
                break
    if dist.rank == 0:
        save_encoder(out, model, t, dist.world, step)
        writer.close()
        log(f"encoder saved to {out / 'encoder.pt'}")
    dist.barrier()
    return out
