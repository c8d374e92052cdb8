"""nerfstudio's torch hash grid as one fused Triton kernel per pass (no tiny-cuda-nn needed).

The function is exactly nerfstudio 1.1.5's `HashEncoding.pytorch_fwd`: every level is hashed (no dense
coarse levels, unlike tiny-cuda-nn), corners are `floor` and `ceil` of `x * floor(min_res * b**level)`,
the hash is `(x * 1) ^ (y * 2654435761) ^ (z * 805459861) mod T`, and the trilinear weights are the
fractional offsets. The parameter is the same `hash_table` tensor of shape `[num_levels * T, features]`,
so a checkpoint trained with either implementation loads into the other.

The torch grid computes the hash in int64; this kernel uses wrapping uint32 arithmetic. The low
`log2(T) <= 32` bits of a product and of a xor depend only on the low 32 bits of their operands, so
both give the same index for any integer coordinates, negative ones included.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from jaxtyping import Float
from nerfstudio.field_components.encodings import Encoding, HashEncoding
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

_BLOCK = 128


@triton.jit
def _corner_index(hx, hy, hz, level, TABLE_SIZE: tl.constexpr):
    """Row of the table holding one corner: the instant-NGP hash, masked to the level's slice."""
    h = (hx ^ hy ^ hz) & (TABLE_SIZE - 1)
    return level * TABLE_SIZE + h.to(tl.int64)


@triton.jit
def _level_coords(px, py, pz, scale):
    """Floor and ceil corner hashes (per axis, before the xor) and the fractional offsets."""
    sx = px * scale
    sy = py * scale
    sz = pz * scale
    fx = tl.floor(sx)
    fy = tl.floor(sy)
    fz = tl.floor(sz)
    # Per-axis hash factors (1, 2654435761, 805459861), in wrapping uint32 arithmetic.
    hxf = fx.to(tl.int32).to(tl.uint32, bitcast=True)
    hxc = tl.ceil(sx).to(tl.int32).to(tl.uint32, bitcast=True)
    hyf = fy.to(tl.int32).to(tl.uint32, bitcast=True) * 2654435761
    hyc = tl.ceil(sy).to(tl.int32).to(tl.uint32, bitcast=True) * 2654435761
    hzf = fz.to(tl.int32).to(tl.uint32, bitcast=True) * 805459861
    hzc = tl.ceil(sz).to(tl.int32).to(tl.uint32, bitcast=True) * 805459861
    return hxf, hxc, hyf, hyc, hzf, hzc, sx - fx, sy - fy, sz - fz


@triton.jit
def _hash_grid_fwd_kernel(
    x_ptr,
    table_ptr,
    scalings_ptr,
    out_ptr,
    n_points,
    NUM_LEVELS: tl.constexpr,
    TABLE_SIZE: tl.constexpr,
    FEATURES: tl.constexpr,
    FEATURES_P2: tl.constexpr,
    BLOCK: tl.constexpr,
):
    rows = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    mask = rows < n_points
    px = tl.load(x_ptr + rows * 3, mask=mask, other=0.0).to(tl.float32)
    py = tl.load(x_ptr + rows * 3 + 1, mask=mask, other=0.0).to(tl.float32)
    pz = tl.load(x_ptr + rows * 3 + 2, mask=mask, other=0.0).to(tl.float32)
    feat = tl.arange(0, FEATURES_P2)[None, :]
    fmask = mask[:, None] & (feat < FEATURES)
    for level in range(NUM_LEVELS):
        scale = tl.load(scalings_ptr + level).to(tl.float32)
        hxf, hxc, hyf, hyc, hzf, hzc, ox, oy, oz = _level_coords(px, py, pz, scale)
        # Corners named as in nerfstudio's pytorch_fwd: f_0 = (c, c, c), f_6 = (f, f, f).
        f0 = tl.load(table_ptr + _corner_index(hxc, hyc, hzc, level, TABLE_SIZE)[:, None] * FEATURES + feat, fmask)
        f1 = tl.load(table_ptr + _corner_index(hxc, hyf, hzc, level, TABLE_SIZE)[:, None] * FEATURES + feat, fmask)
        f2 = tl.load(table_ptr + _corner_index(hxf, hyf, hzc, level, TABLE_SIZE)[:, None] * FEATURES + feat, fmask)
        f3 = tl.load(table_ptr + _corner_index(hxf, hyc, hzc, level, TABLE_SIZE)[:, None] * FEATURES + feat, fmask)
        f4 = tl.load(table_ptr + _corner_index(hxc, hyc, hzf, level, TABLE_SIZE)[:, None] * FEATURES + feat, fmask)
        f5 = tl.load(table_ptr + _corner_index(hxc, hyf, hzf, level, TABLE_SIZE)[:, None] * FEATURES + feat, fmask)
        f6 = tl.load(table_ptr + _corner_index(hxf, hyf, hzf, level, TABLE_SIZE)[:, None] * FEATURES + feat, fmask)
        f7 = tl.load(table_ptr + _corner_index(hxf, hyc, hzf, level, TABLE_SIZE)[:, None] * FEATURES + feat, fmask)
        ox = ox[:, None]
        oy = oy[:, None]
        oz = oz[:, None]
        f03 = f0.to(tl.float32) * ox + f3.to(tl.float32) * (1 - ox)
        f12 = f1.to(tl.float32) * ox + f2.to(tl.float32) * (1 - ox)
        f56 = f5.to(tl.float32) * ox + f6.to(tl.float32) * (1 - ox)
        f47 = f4.to(tl.float32) * ox + f7.to(tl.float32) * (1 - ox)
        value = (f03 * oy + f12 * (1 - oy)) * oz + (f47 * oy + f56 * (1 - oy)) * (1 - oz)
        out_offsets = rows[:, None] * (NUM_LEVELS * FEATURES) + level * FEATURES + feat
        tl.store(out_ptr + out_offsets, value.to(out_ptr.dtype.element_ty), fmask)


@triton.jit
def _scatter_corner(grad_table_ptr, index, feat, fmask, grad, weight, FEATURES: tl.constexpr):
    tl.atomic_add(grad_table_ptr + index[:, None] * FEATURES + feat, grad * weight, fmask)


@triton.jit
def _hash_grid_bwd_kernel(
    grad_out_ptr,
    x_ptr,
    table_ptr,
    scalings_ptr,
    grad_table_ptr,
    grad_x_ptr,
    n_points,
    NUM_LEVELS: tl.constexpr,
    TABLE_SIZE: tl.constexpr,
    FEATURES: tl.constexpr,
    FEATURES_P2: tl.constexpr,
    INPUT_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    rows = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    mask = rows < n_points
    px = tl.load(x_ptr + rows * 3, mask=mask, other=0.0).to(tl.float32)
    py = tl.load(x_ptr + rows * 3 + 1, mask=mask, other=0.0).to(tl.float32)
    pz = tl.load(x_ptr + rows * 3 + 2, mask=mask, other=0.0).to(tl.float32)
    feat = tl.arange(0, FEATURES_P2)[None, :]
    fmask = mask[:, None] & (feat < FEATURES)
    gx = tl.zeros([BLOCK], tl.float32)
    gy = tl.zeros([BLOCK], tl.float32)
    gz = tl.zeros([BLOCK], tl.float32)
    for level in range(NUM_LEVELS):
        scale = tl.load(scalings_ptr + level).to(tl.float32)
        hxf, hxc, hyf, hyc, hzf, hzc, ox, oy, oz = _level_coords(px, py, pz, scale)
        grad_offsets = rows[:, None] * (NUM_LEVELS * FEATURES) + level * FEATURES + feat
        g = tl.load(grad_out_ptr + grad_offsets, fmask, other=0.0).to(tl.float32)
        i0 = _corner_index(hxc, hyc, hzc, level, TABLE_SIZE)
        i1 = _corner_index(hxc, hyf, hzc, level, TABLE_SIZE)
        i2 = _corner_index(hxf, hyf, hzc, level, TABLE_SIZE)
        i3 = _corner_index(hxf, hyc, hzc, level, TABLE_SIZE)
        i4 = _corner_index(hxc, hyc, hzf, level, TABLE_SIZE)
        i5 = _corner_index(hxc, hyf, hzf, level, TABLE_SIZE)
        i6 = _corner_index(hxf, hyf, hzf, level, TABLE_SIZE)
        i7 = _corner_index(hxf, hyc, hzf, level, TABLE_SIZE)
        ox = ox[:, None]
        oy = oy[:, None]
        oz = oz[:, None]
        _scatter_corner(grad_table_ptr, i0, feat, fmask, g, ox * oy * oz, FEATURES)
        _scatter_corner(grad_table_ptr, i1, feat, fmask, g, ox * (1 - oy) * oz, FEATURES)
        _scatter_corner(grad_table_ptr, i2, feat, fmask, g, (1 - ox) * (1 - oy) * oz, FEATURES)
        _scatter_corner(grad_table_ptr, i3, feat, fmask, g, (1 - ox) * oy * oz, FEATURES)
        _scatter_corner(grad_table_ptr, i4, feat, fmask, g, ox * oy * (1 - oz), FEATURES)
        _scatter_corner(grad_table_ptr, i5, feat, fmask, g, ox * (1 - oy) * (1 - oz), FEATURES)
        _scatter_corner(grad_table_ptr, i6, feat, fmask, g, (1 - ox) * (1 - oy) * (1 - oz), FEATURES)
        _scatter_corner(grad_table_ptr, i7, feat, fmask, g, (1 - ox) * oy * (1 - oz), FEATURES)
        if INPUT_GRAD:
            # d(offset)/dx = scale (floor and ceil are piecewise constant), as torch autograd gives.
            f0 = tl.load(table_ptr + i0[:, None] * FEATURES + feat, fmask, other=0.0).to(tl.float32)
            f1 = tl.load(table_ptr + i1[:, None] * FEATURES + feat, fmask, other=0.0).to(tl.float32)
            f2 = tl.load(table_ptr + i2[:, None] * FEATURES + feat, fmask, other=0.0).to(tl.float32)
            f3 = tl.load(table_ptr + i3[:, None] * FEATURES + feat, fmask, other=0.0).to(tl.float32)
            f4 = tl.load(table_ptr + i4[:, None] * FEATURES + feat, fmask, other=0.0).to(tl.float32)
            f5 = tl.load(table_ptr + i5[:, None] * FEATURES + feat, fmask, other=0.0).to(tl.float32)
            f6 = tl.load(table_ptr + i6[:, None] * FEATURES + feat, fmask, other=0.0).to(tl.float32)
            f7 = tl.load(table_ptr + i7[:, None] * FEATURES + feat, fmask, other=0.0).to(tl.float32)
            f03 = f0 * ox + f3 * (1 - ox)
            f12 = f1 * ox + f2 * (1 - ox)
            f56 = f5 * ox + f6 * (1 - ox)
            f47 = f4 * ox + f7 * (1 - ox)
            d_ox = oz * (oy * (f0 - f3) + (1 - oy) * (f1 - f2)) + (1 - oz) * (oy * (f4 - f7) + (1 - oy) * (f5 - f6))
            d_oy = oz * (f03 - f12) + (1 - oz) * (f47 - f56)
            d_oz = (f03 * oy + f12 * (1 - oy)) - (f47 * oy + f56 * (1 - oy))
            gx += tl.sum(g * d_ox, axis=1) * scale
            gy += tl.sum(g * d_oy, axis=1) * scale
            gz += tl.sum(g * d_oz, axis=1) * scale
    if INPUT_GRAD:
        tl.store(grad_x_ptr + rows * 3, gx, mask)
        tl.store(grad_x_ptr + rows * 3 + 1, gy, mask)
        tl.store(grad_x_ptr + rows * 3 + 2, gz, mask)


def _launch_meta(table: Tensor, scalings: Tensor, log2_hashmap_size: int, n_points: int) -> tuple:
    features = table.shape[1]
    meta = {
        "NUM_LEVELS": scalings.numel(),
        "TABLE_SIZE": 2**log2_hashmap_size,
        "FEATURES": features,
        "FEATURES_P2": triton.next_power_of_2(features),
        "BLOCK": _BLOCK,
    }
    return (triton.cdiv(n_points, _BLOCK),), meta


class _HashGridEncode(torch.autograd.Function):
    """Autograd wrapper: table gradient by atomic scatter (fp32), input gradient for density normals."""

    @staticmethod
    def forward(ctx, x: Tensor, table: Tensor, scalings: Tensor, log2_hashmap_size: int) -> Tensor:
        grid, meta = _launch_meta(table, scalings, log2_hashmap_size, x.shape[0])
        out = torch.empty(
            (x.shape[0], meta["NUM_LEVELS"] * meta["FEATURES"]),
            dtype=torch.promote_types(x.dtype, table.dtype),
            device=x.device,
        )
        if x.shape[0]:
            _hash_grid_fwd_kernel[grid](x, table, scalings, out, x.shape[0], **meta)
        ctx.save_for_backward(x, table, scalings)
        ctx.log2_hashmap_size = log2_hashmap_size
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        x, table, scalings = ctx.saved_tensors
        grid, meta = _launch_meta(table, scalings, ctx.log2_hashmap_size, x.shape[0])
        input_grad = ctx.needs_input_grad[0]
        # fp32 accumulation whatever the table's dtype: fp16 atomics lose most small per-sample updates.
        grad_table = torch.zeros(table.shape, dtype=torch.float32, device=table.device)
        grad_x = torch.empty((x.shape[0], 3), dtype=torch.float32, device=x.device) if input_grad else grad_table
        if x.shape[0]:
            _hash_grid_bwd_kernel[grid](
                grad_out.contiguous(), x, table, scalings, grad_table, grad_x, x.shape[0], INPUT_GRAD=input_grad, **meta
            )
        return (
            grad_x.to(x.dtype) if input_grad else None,
            grad_table.to(table.dtype) if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


def hash_grid_encode(x: Tensor, table: Tensor, scalings: Tensor, log2_hashmap_size: int) -> Tensor:
    """The torch grid's `pytorch_fwd(x)` for the given table, differentiable in `x` and `table`.

    x: [..., 3]; table: [levels * 2**log2_hashmap_size, features]; scalings: [levels], integer-valued
    (any dtype that holds them exactly; the kernel reads them as float32, as the torch grid uses them).
    Returns [..., levels * features] in the promoted dtype of x and table (as torch would).
    """
    if table.shape[0] != scalings.numel() * 2**log2_hashmap_size:
        raise ValueError(
            f"hash table has {table.shape[0]} rows; {scalings.numel()} levels of 2**{log2_hashmap_size} need "
            f"{scalings.numel() * 2**log2_hashmap_size}"
        )
    if not 0 < log2_hashmap_size <= 32:
        raise ValueError(f"log2_hashmap_size must be in 1..32 for the uint32 hash, got {log2_hashmap_size}")
    flat = x.reshape(-1, 3).contiguous()
    out = _HashGridEncode.apply(flat, table.contiguous(), scalings.contiguous(), log2_hashmap_size)
    return out.view(*x.shape[:-1], out.shape[-1])


def triton_can_run(device: torch.device) -> bool:
    """Triton kernels run on CUDA tensors, or on CPU ones under the interpreter (TRITON_INTERPRET=1, tests)."""
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


class FusedHashEncoding(HashEncoding):
    """A torch `HashEncoding` evaluated by the fused kernel; same table, same state-dict key, same function.

    Built from an existing torch grid (`from_torch`) rather than through `HashEncoding.__init__`, which
    would draw and discard a fresh random table (and shift the seeded random stream of everything after).
    On a device Triton cannot run on (a CPU with no interpreter), it falls back to nerfstudio's own
    `pytorch_fwd`, so a model trained on a GPU still evaluates on a CPU.
    """

    def __init__(self, source: HashEncoding) -> None:
        if source.tcnn_encoding is not None:
            raise ValueError("FusedHashEncoding replaces a torch HashEncoding, not a tiny-cuda-nn one.")
        Encoding.__init__(self, in_dim=3)
        self.num_levels = source.num_levels
        self.min_res = source.min_res
        self.features_per_level = source.features_per_level
        self.hash_init_scale = source.hash_init_scale
        self.log2_hashmap_size = source.log2_hashmap_size
        self.hash_table_size = source.hash_table_size
        self.growth_factor = source.growth_factor
        self.scalings = source.scalings
        self.hash_offset = source.hash_offset
        self.tcnn_encoding = None
        self.hash_table = source.hash_table
        # A buffer (not saved) so it follows .to(device) once instead of being copied on every call; int32
        # (the scalings are floored integers) so that .half() cannot round them above 2048.
        # On the table's device: a grid moved to the GPU before it is wrapped must not hand Triton a CPU pointer.
        scalings = source.scalings.to(device=source.hash_table.device, dtype=torch.int32)
        self.register_buffer("_level_scalings", scalings, persistent=False)

    def forward(self, in_tensor: Float[Tensor, "*bs input_dim"]) -> Float[Tensor, "*bs output_dim"]:  # noqa: F722
        if not triton_can_run(in_tensor.device):
            return self.pytorch_fwd(in_tensor)
        return hash_grid_encode(in_tensor, self.hash_table, self._level_scalings, self.log2_hashmap_size)


def fuse_hash_encodings(module: nn.Module) -> int:
    """Swap every torch `HashEncoding` inside `module` for a `FusedHashEncoding` sharing its table.

    A grid registered under two parents (nerfstudio's proposal networks hold it as `encoding` and as
    `mlp_base[0]`) gets one fused module in both places. Returns the number of distinct grids swapped.
    """
    swapped: dict[HashEncoding, FusedHashEncoding] = {}
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is HashEncoding and child.tcnn_encoding is None:
                if child not in swapped:
                    swapped[child] = FusedHashEncoding(child)
                setattr(parent, name, swapped[child])
    return len(swapped)
