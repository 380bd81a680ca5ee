"""Frame interpolation network in the IFRNet family (Kong et al., CVPR 2022), sized for a CPU.

The structure follows IFRNet: one feature pyramid shared by both frames (four levels, each a
stride-2 conv and a conv, PReLU); a coarsest decoder that sees both frames' features and the
fraction ``t`` and predicts the two flows from the wanted frame back to each real one plus an
intermediate feature; three decoders that each warp the real frames' features by the current
flows (``grid_sample``), refine the flows as residuals and upsample by a transposed conv; at full
resolution a blend mask and a residual. The frame is ``mask·warp(I0, F_t->0) + (1 - mask)·
warp(I1, F_t->1) + residual``. InterpolAI builds on FILM, which shares this skeleton (pyramid,
bidirectional coarse-to-fine flow, warping, fusion); IFRNet's single-pass decoder is the cheaper
of the two, which is what a 2-core CPU needs.

Differences from the published IFRNet, all for microscopy: one grey channel of camera counts
(normalised by the session, not 8-bit RGB); the fraction enters as a third input plane, constant
over the image, so the exported graph has one input and arbitrary ``t`` needs no other input;
no distillation from a teacher flow (there is none for fluorescence), trained on the simulator's
exact intermediate frames instead. Input ``(N, 3, H, W)``: before, after, fraction; output
``(N, 1, H, W)``: the frame at that fraction, in the input's units. Sides must be multiples of 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InterpNet", "warp"]


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at each pixel plus ``flow`` (pixels, channels x then y): backward warp.

    ``grid_sample`` exports to ONNX (GridSample, opset 16) and runs in TensorRT.
    """
    _, _, rows, cols = flow.shape
    xs = torch.linspace(-1.0, 1.0, cols, dtype=flow.dtype, device=flow.device)
    ys = torch.linspace(-1.0, 1.0, rows, dtype=flow.dtype, device=flow.device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    x = grid_x + flow[:, 0] * (2.0 / max(cols - 1, 1))
    y = grid_y + flow[:, 1] * (2.0 / max(rows - 1, 1))
    grid = torch.stack((x, y), dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _conv(channels_in: int, channels_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, stride, 1), nn.PReLU(channels_out))


class _ResBlock(nn.Module):
    """Two convs and a skip, as IFRNet's decoders use between their input and output convs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), nn.Conv2d(channels, channels, 3, 1, 1))
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(x + self.body(x))
        return out


def _decoder(channels_in: int, width: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(channels_in, width),
        _ResBlock(width),
        nn.ConvTranspose2d(width, channels_out, 4, 2, 1),
    )


class InterpNet(nn.Module):
    """IFRNet-style interpolation: ``(N, 3, H, W)`` (before, after, fraction) -> ``(N, 1, H, W)``.

    ``features``: channels of the four pyramid levels (1/2 .. 1/16 resolution).
    """

    levels = 4

    def __init__(self, features: tuple[int, int, int, int] | list[int] = (16, 24, 32, 48)) -> None:
        super().__init__()
        c = [int(f) for f in features]
        if len(c) != self.levels or min(c) < 1:
            raise ValueError(f"features must be 4 positive channel counts, got {features}")
        widths = [1, *c]
        self.pyramid = nn.ModuleList(
            nn.Sequential(_conv(widths[i], widths[i + 1], 2), _conv(widths[i + 1], widths[i + 1]))
            for i in range(self.levels)
        )
        # coarsest: both features and t -> flows (4) + the next level's intermediate feature
        self.coarsest = _decoder(2 * c[3] + 1, 2 * c[3], c[2] + 4)
        # finer: intermediate feature, both warped features, both flows -> refined
        self.refine = nn.ModuleList(
            _decoder(3 * c[i] + 4, 3 * c[i], (c[i - 1] if i else 2) + 4) for i in (2, 1, 0)
        )

    def _features(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for level in self.pyramid:
            image = level(image)
            features.append(image)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after, fraction = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        # the pyramid sees the pair's mean removed (as IFRNet); the blend uses the frames as given
        mean = (before.mean(dim=(2, 3), keepdim=True) + after.mean(dim=(2, 3), keepdim=True)) / 2
        f0 = self._features(before - mean)
        f1 = self._features(after - mean)
        t = F.avg_pool2d(fraction, 2**self.levels)
        out = self.coarsest(torch.cat((f0[3], f1[3], t), 1))
        for level, decoder in zip((2, 1, 0), self.refine, strict=True):
            flow0, flow1, feature = out[:, 0:2], out[:, 2:4], out[:, 4:]
            warped0, warped1 = warp(f0[level], flow0), warp(f1[level], flow1)
            refined = decoder(torch.cat((feature, warped0, warped1, flow0, flow1), 1))
            up0 = 2.0 * F.interpolate(flow0, scale_factor=2.0, mode="bilinear")
            up1 = 2.0 * F.interpolate(flow1, scale_factor=2.0, mode="bilinear")
            out = torch.cat((refined[:, 0:2] + up0, refined[:, 2:4] + up1, refined[:, 4:]), 1)
        flow0, flow1 = out[:, 0:2], out[:, 2:4]
        mask = torch.sigmoid(out[:, 4:5])
        residual = out[:, 5:6]
        blended = mask * warp(before, flow0) + (1.0 - mask) * warp(after, flow1)
        result: torch.Tensor = blended + residual
        return result
