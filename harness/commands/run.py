"""``convbench run``: a framework x model matrix, trained (default) or timed (``--mode speed``)."""
from __future__ import annotations

import argparse

from harness.commands.args import (
    add_interpreter_options,
    add_slurm_options,
    device_arg,
    duration_arg,
    finite_float,
    fraction_pct_arg,
    name_list,
    names_once,
    non_negative_int,
    on_off,
    one_of,
    positive_float,
    positive_int,
    seconds_or_off,
    steps_arg,
    sweep_of,
)
from harness.orchestrator.plan import new_plan, resume_plan
from harness.orchestrator.run import execute
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import DEFAULT_MODELS, FIXED_WARMUP, RECIPE_BATCH, RunSettings

SWEEP_HELP = "a comma list sweeps: one cell per value (docs/results.md, 'Sweeps')"
HELP = "train (and time) a matrix of framework x model x device"


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = RunSettings()
    run = sub.add_parser("run", help=HELP)
    run.add_argument("--mode", choices=("train", "speed"), help="train to accuracy (default) or time the step phases")
    run.add_argument("--frameworks", type=names_once,
                     help="comma-separated; default: every installed one (and any given a --python); the run's output "
                          "names those left out and why")
    run.add_argument("--models", type=names_once, help=f"comma-separated; default: {','.join(DEFAULT_MODELS)}")
    run.add_argument("--device", type=device_arg,
                     help="cpu, cuda or cuda:N (default cpu on every machine; on a machine with a GPU the run's first "
                          "line names it; with --devices, the first of them)")
    run.add_argument("--dataset", help="digits (default in train mode), cifar10 or synthetic (default in speed mode)")
    run.add_argument("--data-dir", metavar="DIR",
                     help="folder holding cifar-10-python.tar.gz or cifar-10-batches-py/ (default: $CONVBENCH_DATA, "
                          "else ~/.cache/convbench, where a missing CIFAR-10 is downloaded, 163 MB, with progress; "
                          "nothing is downloaded into a --data-dir)")
    run.add_argument("--no-checksum", action="store_true", help="accept CIFAR-10 files whose MD5 differs from the release")
    run.add_argument("--epochs", type=positive_int, help="train mode: default 10 on digits, 200 on cifar10, 1 on synthetic")
    run.add_argument("--batch-size", type=sweep_of(positive_int), metavar="N[,N...]",
                     help=f"default {RECIPE_BATCH}; in speed mode 32 for 224x224 models, {RECIPE_BATCH} for 32x32 ones; "
                          f"{SWEEP_HELP}, smallest first; after one runs out of memory the larger are not run")
    run.add_argument("--lr", type=positive_float, help=f"train mode: initial learning rate (default {d.lr:g}; "
                                                         "x0.1 at half the epochs)")
    run.add_argument("--augment", action="store_true", help="train mode: 4-pixel pad + random crop + horizontal flip")
    run.add_argument("--recipe", metavar="FILE.toml", help="recipe file; command-line options override it (default: none)")
    run.add_argument("--schedule", help="train mode: lr schedule: step (x0.1 at half the epochs, default), step:E1,E2, "
                                        "constant")
    run.add_argument("--optimizer", choices=("momentum", "sgd"),
                     help=f"momentum (SGD, momentum {d.momentum:g}; default) or sgd (plain SGD: momentum 0)")
    run.add_argument("--momentum", type=finite_float, help=f"SGD momentum, 0 to below 1 (default {d.momentum:g})")
    run.add_argument("--weight-decay", type=finite_float, help=f"L2 weight decay on every parameter (default {d.weight_decay:g})")
    run.add_argument("--target", type=finite_float, metavar="ACC",
                     help="train mode: stop at this test accuracy (0-1) and report time to reach it (default: none, "
                          "train every epoch)")
    run.add_argument("--seeds", type=positive_int, metavar="N", help="repeat each cell with N seeds: --seed, --seed+1, ... "
                                                                     "(default 1)")
    run.add_argument("--resume-from", metavar="CHECKPOINT",
                     help="train mode: continue training from a portable checkpoint (.npz) (default: from scratch)")
    run.add_argument("--seed", type=non_negative_int, help=f"default {d.seed}")
    run.add_argument("--threads", type=sweep_of(positive_int), metavar="N[,N...]",
                     help=f"CPU threads per worker (default: all cores); {SWEEP_HELP}")
    run.add_argument("--output", metavar="DIR", help="parent of the new run directory (default ./results)")
    run.add_argument("--steps", type=steps_arg, metavar="auto|N",
                     help="speed mode: auto (default): each series samples until its median is known to "
                          "--precision-target or --max-time is spent; N: a fixed N timed steps after --warmup burn-in "
                          "steps, then one pipelined window of N steps (the protocol before auto)")
    run.add_argument("--warmup", type=non_negative_int,
                     help=f"speed mode: burn-in steps after the first (default: detected, each series dropping leading "
                          f"steps while they get faster; {FIXED_WARMUP} with --steps N)")
    run.add_argument("--precision-target", type=fraction_pct_arg, metavar="PCT",
                     help=f"speed mode, --steps auto: the median's 95%% interval half-width to sample for, in %% of the "
                          f"median (default {100 * d.precision_target:g}%%, a fraction of {d.precision_target:g}); a "
                          "phase that misses it is marked unstable")
    run.add_argument("--max-time", type=positive_float, metavar="SECONDS",
                     help=f"speed mode, --steps auto: wall seconds per series (per-step timing; pipelined windows on a "
                          f"GPU) before it stops unmet (default {d.max_time:g})")
    run.add_argument("--min-steps", type=positive_int, metavar="N",
                     help=f"speed mode, --steps auto: samples a series takes before it may stop (default {d.min_steps})")
    run.add_argument("--budget", type=duration_arg, metavar="DURATION",
                     help="speed mode, --steps auto: the whole run's wall time (30m, 2h, 1h30m, 90s): each cell's "
                          "series share what is left, and time a quiet phase does not use goes to the noisier ones "
                          "(default: none, --max-time per series)")
    run.add_argument("--compile", type=sweep_of(one_of("auto", "none", "default", "xla")), metavar="MODE[,MODE...]",
                     help="auto (default): each framework's usual path (torch eager, TF tf.function, paddle dygraph, "
                          "jax.jit); none: eager everywhere; default: torch.compile, tf.function, paddle.jit.to_static; "
                          "xla: tf.function(jit_compile=True), jax.jit; a list sweeps")
    run.add_argument("--precision", type=sweep_of(one_of("fp32", "bf16", "fp16")), metavar="fp32|bf16|fp16[,...]",
                     help="autocast / mixed precision (default fp32); a list sweeps")
    run.add_argument("--layout", type=sweep_of(one_of("native", "nchw", "nhwc")), metavar="native|nchw|nhwc[,...]",
                     help="memory layout (default native: each framework's fast one); a list sweeps")
    run.add_argument("--tf32", type=on_off, metavar="on|off",
                     help="TF32 tensor cores for fp32 convolutions and matmuls, the same in every framework (default on)")
    run.add_argument("--autotune", type=on_off, metavar="on|off",
                     help="cuDNN/XLA convolution algorithm autotuning, the same in every framework (default on)")
    run.add_argument("--compile-cache", metavar="DIR",
                     help="keep each framework's persistent compilation cache in DIR/<framework> (XLA for jax and "
                          "--compile xla, torch.compile's inductor caches), so a later run with the same DIR starts "
                          "warm; each row's compile_cache says cold or warm (default: off)")
    run.add_argument("--executor", choices=("local", "ray", "slurm"), help="local (default): cells one after another "
                     "here; ray: each cell a task on a Ray cluster; slurm: each cell a Slurm job (docs/scale-out.md)")
    run.add_argument("--ray-address", metavar="ADDR", help="address of an existing Ray cluster (default: start Ray locally)")
    add_slurm_options(run)
    run.add_argument("--nproc", type=positive_int, metavar="N",
                     help="train each cell data-parallel over N CPU processes (default: one process)")
    run.add_argument("--devices", type=name_list, metavar="cuda:0,cuda:1",
                     help="train each cell data-parallel over these GPUs (default: one device)")
    run.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                     help="seconds per cell before its worker is killed (status timeout; default: none)")
    run.add_argument("--stall-timeout", type=seconds_or_off, metavar="SECONDS",
                     help=f"kill a cell's worker that reports no progress (a step, an epoch, a phase) for SECONDS "
                          f"(status stalled; default {d.stall_timeout:g}, enough for a first step that compiles and "
                          f"autotunes a big model on a slow device; 0 or off: never). With --resume, --timeout and "
                          f"--stall-timeout apply to the cells that run again")
    run.add_argument("--oom-retry", action="store_true", help="on out-of-memory, halve the batch and run the cell again")
    run.add_argument("--require-quiet", type=positive_float, metavar="SECONDS",
                     help="before each cell, wait up to SECONDS for other processes to use at most 10%% of the CPU; "
                          "then run it, its note saying so if the machine never got quiet (default: no wait)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="complete an earlier run in its own folder, with its own settings: only its missing or failed "
                          "cells (default: a new run)")
    add_interpreter_options(run)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    regs = build_registries(get_plugin_manager())
    plan = resume_plan(args, regs) if args.resume else new_plan(args, argv, regs)
    return execute(plan, regs)
