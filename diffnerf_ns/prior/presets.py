"""Named prior sizes, each defined once: the fallback, the benchmarks and the tests take theirs from here.

`dataclasses.replace(PRIOR_PRESETS[name], out=..., steps=...)` then changes only what a use needs, so two uses
that mean the same size cannot drift apart.
"""

from __future__ import annotations

from diffnerf_ns.prior.train import TrainConfig

PRIOR_PRESETS: dict[str, TrainConfig] = {
    # The shippable prior (10M parameters, 48 px, attention): `TrainConfig`'s own defaults, for a GPU.
    "shippable": TrainConfig(),
    # A per-scene fallback prior: narrower and shorter, a few minutes on one GPU.
    "scene": TrainConfig(
        block_out_channels=(32, 64, 128, 256),
        layers_per_block=1,
        steps=4000,
        batch_size=64,
        lr=5e-4,
        warmup_steps=200,
        ema_decay=0.999,
        checkpoint_every=1000,
    ),
    # A CPU benchmark prior (24 px, UNet 16-32): minutes on 2 cores.
    "cpu-bench": TrainConfig(
        patch_size=24,
        block_out_channels=(16, 32),
        layers_per_block=1,
        attention=False,
        steps=4000,
        batch_size=32,
        lr=2e-3,
        warmup_steps=100,
        ema_decay=0.995,
        checkpoint_every=1000,
    ),
    # The tests' prior (16 px, UNet 16-32): seconds to minutes on 2 cores.
    "test": TrainConfig(
        patch_size=16,
        block_out_channels=(16, 32),
        layers_per_block=1,
        attention=False,
        steps=400,
        batch_size=32,
        lr=2e-3,
        warmup_steps=20,
        ema_decay=0.995,
        checkpoint_every=200,
    ),
}
