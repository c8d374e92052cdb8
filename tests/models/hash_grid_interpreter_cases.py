"""The fused Triton hash grid against nerfstudio's torch grid, on CPU through Triton's interpreter.

Not collected by default (no test_ prefix): tests/models/test_triton_hash_grid.py runs this file in a
child pytest started with TRITON_INTERPRET=1, because Triton chooses interpret-or-compile for its own
library functions when it is first imported, which a test session has usually done long before.
"""

from __future__ import annotations

import os

if os.environ.get("TRITON_INTERPRET") != "1":
    raise RuntimeError(f"{__file__} must run in a process started with TRITON_INTERPRET=1 (see its docstring)")

import pytest  # noqa: E402
import torch  # noqa: E402
from nerfstudio.data.scene_box import SceneBox  # noqa: E402
from nerfstudio.field_components.encodings import HashEncoding  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

from diffnerf_ns.fields import triton_hash_encoding as fused  # noqa: E402
from diffnerf_ns.models import diffnerf_model  # noqa: E402
from diffnerf_ns.models.diffnerf_model import DiffNerfModelConfig  # noqa: E402
from diffnerf_ns.presets import small_model  # noqa: E402


def test_kernels_run_in_the_interpreter() -> None:
    """Guards the other tests: if the kernel module were imported before TRITON_INTERPRET was set, they
    would try to compile for a GPU instead of comparing on CPU."""
    assert isinstance(fused._hash_grid_fwd_kernel, InterpretedFunction)
    assert isinstance(fused._hash_grid_bwd_kernel, InterpretedFunction)


def _points(n: int, scale: float) -> torch.Tensor:
    """Random points in the unit cube plus the awkward ones: exact grid vertices (ceil == floor), the
    cube's faces, and points outside it (negative coordinates hash through two's complement)."""
    g = torch.Generator().manual_seed(1)
    inside = torch.rand(n, 3, generator=g)
    on_vertices = torch.randint(0, int(scale) + 1, (16, 3), generator=g).float() / scale
    faces = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.5], [1.0, 0.0, 0.25]])
    outside = torch.rand(16, 3, generator=g) * 3 - 1.5
    return torch.cat([inside, on_vertices, faces, outside])


def _torch_grid(levels: int, min_res: int, max_res: int, log2_size: int, features: int) -> HashEncoding:
    enc = HashEncoding(
        num_levels=levels,
        min_res=min_res,
        max_res=max_res,
        log2_hashmap_size=log2_size,
        features_per_level=features,
        implementation="torch",
    )
    with torch.no_grad():  # O(1) values, so interpolation errors are not hidden by the 1e-3 init scale
        enc.hash_table.uniform_(-1, 1, generator=torch.Generator().manual_seed(2))
    return enc


GRIDS = {
    # coarse levels whose whole grid (res+1)^3 fits in the table: tiny-cuda-nn would index them densely,
    # the torch grid (and so the fused one) still hashes them
    "coarse-fits-table": (4, 2, 12, 12, 2),
    # 2^8 rows for grids up to 512^3: nearly every row is shared by many vertices
    "collisions-small-table": (6, 16, 512, 8, 2),
    "nerfacto-like-levels": (8, 16, 1024, 14, 2),
    "four-features": (3, 4, 64, 10, 4),
    "three-features-padded": (2, 3, 9, 6, 3),
}


@pytest.mark.parametrize("grid", GRIDS.values(), ids=GRIDS.keys())
def test_fused_grid_matches_torch_grid_values_and_gradients(grid: tuple[int, int, int, int, int]) -> None:
    """Catches a wrong prime, a swapped corner, floor+1 for ceil, a per-level scaling off by one level, a
    missing level offset, a transposed table, a dropped atomic (collisions), or a wrong input gradient
    (the scaling factor of d offset / dx, or a swapped lerp direction)."""
    enc = _torch_grid(*grid)
    fused_enc = fused.FusedHashEncoding(enc)
    x = _points(384, float(enc.scalings[-1]))
    x_ref, x_fused = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref, out = enc(x_ref), fused_enc(x_fused)
    assert out.shape == ref.shape == (x.shape[0], enc.get_out_dim())
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)

    upstream = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3))
    g_x_ref, g_table_ref = torch.autograd.grad(ref, [x_ref, enc.hash_table], upstream)
    g_x, g_table = torch.autograd.grad(out, [x_fused, fused_enc.hash_table], upstream)
    torch.testing.assert_close(g_table, g_table_ref, rtol=1e-4, atol=1e-5)
    # input gradients scale with the finest resolution (up to 1024): compare relative to their size
    torch.testing.assert_close(g_x, g_x_ref, rtol=1e-4, atol=1e-5 * float(g_x_ref.abs().max()))


def test_small_table_really_collides() -> None:
    """Guards the collision case above: it only proves atomic accumulation if distinct vertices share rows."""
    enc = _torch_grid(*GRIDS["collisions-small-table"])
    x = _points(384, float(enc.scalings[-1]))
    scaled = (x[:, None, :] * enc.scalings.view(-1, 1)).floor().int()  # [N, levels, 3] floor corners
    levels = torch.arange(enc.num_levels, dtype=torch.int32).expand(x.shape[0], -1)[..., None]
    distinct_vertices = torch.unique(torch.cat([levels, scaled], dim=-1).reshape(-1, 4), dim=0).shape[0]
    rows = torch.unique(enc.hash_fn(scaled)).numel()
    assert distinct_vertices > 2 * rows


def test_fp16_table_and_inputs() -> None:
    """Catches fp16 accumulation of the table gradient (many small per-sample updates to one row vanish)
    a wrong output dtype, and level scalings rounded by `.half()` (above 2048 fp16 cannot hold every
    integer): the result must be the torch grid's, up to fp16 rounding of the inputs."""
    enc = _torch_grid(6, 16, 3333, 8, 2)
    assert (enc.scalings.half().float() != enc.scalings).any()  # the rounding case is really exercised
    fused_enc = fused.FusedHashEncoding(enc).half()
    x = _points(384, float(enc.scalings[-1])).clamp(0, 1).half()
    x_fused = x.clone().requires_grad_()
    out = fused_enc(x_fused)
    assert out.dtype == torch.float16
    ref_enc = HashEncoding(
        num_levels=enc.num_levels, min_res=16, max_res=3333, log2_hashmap_size=8, implementation="torch"
    )
    ref_enc.hash_table = torch.nn.Parameter(enc.hash_table.detach().half().float())
    ref_table = ref_enc.hash_table
    x_ref = x.float().requires_grad_()
    ref = ref_enc(x_ref)
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=2e-3)

    upstream = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3))
    g_table_ref, g_x_ref = torch.autograd.grad(ref, [ref_table, x_ref], upstream)
    g_x, g_table = torch.autograd.grad(out, [x_fused, fused_enc.hash_table], upstream.half())
    assert g_table.dtype == torch.float16 and g_x.dtype == torch.float16
    torch.testing.assert_close(g_table.float(), g_table_ref, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(g_x.float(), g_x_ref, rtol=2e-2, atol=1e-2 * float(g_x_ref.abs().max()))


def _model(monkeypatch: pytest.MonkeyPatch, backend: str) -> diffnerf_model.DiffNerfModel:
    monkeypatch.setattr(diffnerf_model, "select_hash_backend", lambda requested: backend)
    torch.manual_seed(0)
    config = small_model(DiffNerfModelConfig(implementation=backend))
    return config.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]])), num_train_data=2)


def test_model_swaps_every_grid_and_checkpoints_load_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches a grid left on the torch path (the proposal networks), a renamed or reshaped parameter (old
    checkpoints would not load), and a swap that re-initialises the table instead of adopting it."""
    torch_model = _model(monkeypatch, "torch")
    triton_model = _model(monkeypatch, "triton")
    grids = [m for m in triton_model.modules() if isinstance(m, HashEncoding)]
    assert len(grids) == 3 and all(isinstance(m, fused.FusedHashEncoding) for m in grids)
    for net in triton_model.proposal_networks:  # one grid, registered twice: still one module after the swap
        assert net.encoding is net.mlp_base[0]
    assert triton_model.config.implementation == "triton"
    torch_state, triton_state = torch_model.state_dict(), triton_model.state_dict()
    assert {k: v.shape for k, v in torch_state.items()} == {k: v.shape for k, v in triton_state.items()}
    # same seed, same draws: the adopted tables are the torch grid's initialisation itself
    torch.testing.assert_close(
        triton_state["field.mlp_base.model.0.hash_table"], torch_state["field.mlp_base.model.0.hash_table"]
    )
    with torch.no_grad():
        torch_model.field.mlp_base.model[0].hash_table.uniform_(-1, 1)
    triton_model.load_state_dict(torch_model.state_dict())
    x = torch.rand(256, 3)
    torch.testing.assert_close(triton_model.field.mlp_base(x), torch_model.field.mlp_base(x), rtol=1e-5, atol=1e-5)
