"""PyTorch eager (channels_last) on the zoo's canonical models, for the hardware table's comparison column.

Runs in its own virtualenv, not cnnbench's (torchvision imports only with ``torch==2.14.1 torchvision==0.29.1``)::

    python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/torch-venv/bin/python scripts/bench_torch.py --batch 1,32 --precision fp32,bf16 --json > torch.json

It times what ``cnnbench bench`` times, the same way: each arch at its canonical config (torchvision's model, 1,000
classes; LeNet-5 written out, as torchvision has none), a train step (SGD with momentum 0.9, cross-entropy on random
labels, training mode) or an inference call (eval mode, ``torch.inference_mode``), bf16 as ``torch.autocast``
mixed precision; ``warmup`` untimed calls, then ``rounds`` rounds of at least ``min_round_s`` each, images/s at the
median. Prints one JSON object per arch × batch × precision × mode with cnnbench's keys, so the two join on them.
Archs torchvision lacks (xception, seresnet50) are skipped with a note on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torchvision
from torch import nn

# cnnbench zoo name → (builder of the canonical model, input size); trainable parameters must equal SPEC §2's.
REFERENCE_PARAMS = {"lenet5": 61_706, "alexnet": 61_100_840, "vgg11": 132_863_336, "vgg16": 138_357_544,
                    "vgg19": 143_667_240, "googlenet": 6_624_904, "resnet18": 11_689_512, "resnet34": 21_797_672,
                    "resnet50": 25_557_032, "densenet121": 7_978_856, "mobilenetv2": 3_504_872}  # fmt: skip


class LeNet5(nn.Module):
    """The common LeNet-5 (SPEC §2): tanh, average pooling, fully connected C3, 32×32×1 input, 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                                      nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh())  # fmt: skip
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


MODELS: dict[str, tuple[Callable[[], nn.Module], int, int, int]] = {  # builder, img_size, in_chans, classes
    "lenet5": (LeNet5, 32, 1, 10),
    "alexnet": (torchvision.models.alexnet, 224, 3, 1000),
    "vgg11": (torchvision.models.vgg11, 224, 3, 1000),
    "vgg16": (torchvision.models.vgg16, 224, 3, 1000),
    "vgg19": (torchvision.models.vgg19, 224, 3, 1000),
    "googlenet": (lambda: torchvision.models.googlenet(aux_logits=False, init_weights=False), 224, 3, 1000),
    "resnet18": (torchvision.models.resnet18, 224, 3, 1000),
    "resnet34": (torchvision.models.resnet34, 224, 3, 1000),
    "resnet50": (torchvision.models.resnet50, 224, 3, 1000),
    "densenet121": (torchvision.models.densenet121, 224, 3, 1000),
    "mobilenetv2": (torchvision.models.mobilenet_v2, 224, 3, 1000),
}


def step(arch: str, batch: int, precision: str, mode: str, lr: float) -> Callable[[], None]:
    """One train step or inference call of ``arch`` on a fixed random batch, channels_last."""
    build, size, chans, classes = MODELS[arch]
    model = build().to(memory_format=torch.channels_last)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable != REFERENCE_PARAMS[arch]:
        raise AssertionError(f"{arch}: {trainable:,} trainable parameters, SPEC §2 says {REFERENCE_PARAMS[arch]:,}")
    x = torch.randn(batch, chans, size, size).to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    if mode == "infer":
        model.eval()

        def call() -> None:
            with torch.inference_mode(), autocast:
                model(x)

        return call
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(model(x).float(), y)
        loss.backward()
        optimizer.step()

    return train


def measure(fn: Callable[[], None], warmup: int, rounds: int, min_round_s: float) -> list[float]:
    """Seconds per call, per round (cnnbench.engine.timing's protocol)."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    calls = max(1, math.ceil(min_round_s / max(time.perf_counter() - t0, 1e-9)))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=list(MODELS))
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--precision", default="fp32,bf16")
    parser.add_argument("--mode", default="train,infer")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-round-s", type=float, default=0.05)
    parser.add_argument("--json", action="store_true", help="JSON rows instead of a table")
    args = parser.parse_args()
    rows = []
    for arch in args.archs:
        if arch not in MODELS:
            print(f"{arch}: not in torchvision, skipped", file=sys.stderr)
            continue
        for mode in args.mode.split(","):
            for precision in args.precision.split(","):
                for batch in map(int, args.batch.split(",")):
                    times = measure(step(arch, batch, precision, mode, 1e-4), args.warmup, args.rounds,
                                    args.min_round_s)  # fmt: skip
                    median = statistics.median(times)
                    row = {"arch": arch, "batch": batch, "precision": precision, "mode": mode,
                           "images_per_s": batch / median, "step_ms": median * 1e3, "rounds": len(times),
                           "framework": f"torch {torch.__version__} eager channels_last",
                           "threads": torch.get_num_threads()}  # fmt: skip
                    rows.append(row)
                    print(f"{arch}-b{batch}-{precision}-{mode}: {row['images_per_s']:,.1f} img/s", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['arch']:<12} {r['batch']:>4} {r['precision']:<5} {r['mode']:<6} {r['images_per_s']:>10,.1f}")


if __name__ == "__main__":
    main()
