"""Multi-frame 2x super-resolution: a window of frames, aligned and fused, for the centre one.

The published relatives (GPEMSR, CVPR 2024; Bayesian DPA-TISR; EDVR) share three steps, which
this network keeps at CPU size:
- **alignment**: each neighbour is warped onto the centre frame along an optical flow. GPEMSR and
  DPA-TISR take the flow from a frozen, pre-trained SPyNet to guide deformable convolutions;
  no pre-trained SPyNet can be downloaded here and ONNX Runtime has no DeformConv kernel, so the
  flow comes from a small SPyNet-style estimator (three levels, coarse to fine, each a residual
  flow from the frame warped so far) trained end to end, and warping is ``grid_sample``
  (ONNX GridSample, TensorRT);
- **fusion**: EDVR's temporal attention: each aligned frame's features are weighted per pixel by
  their similarity to the centre's (a sigmoid of the embeddings' dot product), then merged by
  a 1x1 convolution;
- **reconstruction**: the DFCAN trunk (Fourier channel attention blocks in residual groups,
  pixel shuffle, sigmoid), as ``dfcan-sr2x-tiny`` at CPU size.

GPEMSR's VQGAN codebook prior is not built (the issue keeps it only if it measurably helps).
Input ``(N, window, H, W)`` normalised frames in time order; output ``(N, 1, 2H, 2W)`` for
frame ``window // 2``. Sides must be multiples of 8 (the flow pyramid).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dfcan import DFCAN, ResidualGroup
from .interp import warp

__all__ = ["MFSRNet"]


class _FlowEstimator(nn.Module):
    """SPyNet-style flow from the centre frame to another, coarse to fine.

    Three levels at 1/8, 1/4 and 1/2 resolution, each a residual flow from the frame warped by
    the flow so far; the half-resolution flow is upsampled to the frame (motion between frames
    is smooth: the full-resolution level cost 4x as much for no visible gain).
    """

    levels = 3

    def __init__(self, features: int) -> None:
        super().__init__()
        self.basic = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(4, features, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(features, features, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(features, 2, 3, padding=1),
            )
            for _ in range(self.levels)
        )

    def forward(self, centre: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        pyramid = [(F.avg_pool2d(centre, 2), F.avg_pool2d(other, 2))]
        for _ in range(self.levels - 1):
            a, b = pyramid[-1]
            pyramid.append((F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)))
        flow = torch.zeros_like(pyramid[-1][0]).repeat(1, 2, 1, 1)
        for level in range(self.levels - 1, -1, -1):
            reference, moving = pyramid[level]
            if level < self.levels - 1:
                flow = 2.0 * F.interpolate(flow, scale_factor=2.0, mode="bilinear")
            warped = warp(moving, flow)
            flow = flow + self.basic[level](torch.cat((reference, warped, flow), 1))
        upsampled: torch.Tensor = 2.0 * F.interpolate(flow, scale_factor=2.0, mode="bilinear")
        return upsampled


class MFSRNet(nn.Module):
    """``(N, window, H, W)`` -> ``(N, 1, 2H, 2W)``: 2x SR of the centre frame (module docstring)."""

    def __init__(
        self,
        window: int = 5,
        features: int = 16,
        groups: int = 2,
        blocks: int = 2,
        reduction: int = 4,
        flow_features: int = 16,
        spectrum_reference_px: int | None = 64,
    ) -> None:
        super().__init__()
        if window < 2 or window % 2 == 0:
            raise ValueError(f"the window must be an odd number of frames >= 3, got {window}")
        self.window = window
        self.extract = nn.Sequential(
            nn.Conv2d(1, features, 3, padding=1), nn.GELU()
        )  # DFCAN's head
        self.flow = _FlowEstimator(flow_features)
        self.embed = nn.Conv2d(features, features, 1)  # 1x1: a 3x3 cost 7 GFLOP a 512 px frame
        self.fuse = nn.Conv2d(window * features, features, 1)
        self.groups = nn.Sequential(
            *(
                ResidualGroup(features, blocks, reduction, 128, spectrum_reference_px)
                for _ in range(groups)
            )
        )
        self.tail = nn.Conv2d(features, features * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.out = nn.Conv2d(features, 1, 3, padding=1)

    @torch.no_grad()
    def start_from_dfcan(self, dfcan: DFCAN) -> None:
        """Start as single-frame DFCAN on the centre frame (a trained one of the trunk's size).

        The trunk, tail, output and feature conv (DFCAN's head) are copied; every aligned frame is
        weighted ~1 and the fusion passes the centre frame's features alone. Training
        then learns what the neighbours add (on 2 CPU cores, from scratch, the network was
        still 1.1 dB behind single-frame DFCAN after 750 steps).
        """
        self.groups.load_state_dict(dfcan.groups.state_dict())
        self.tail.load_state_dict(dfcan.tail.state_dict())
        self.out.load_state_dict(dfcan.out.state_dict())
        self.extract[0].load_state_dict(dfcan.head.state_dict())
        features = self.fuse.weight.shape[0]
        # every frame weighted ~1 (sigmoid of 16 * 0.25), the fusion passing the centre alone
        assert self.embed.bias is not None and self.fuse.bias is not None
        nn.init.zeros_(self.embed.weight)
        nn.init.constant_(self.embed.bias, 0.5)
        nn.init.zeros_(self.fuse.weight)
        nn.init.zeros_(self.fuse.bias)
        centre = self.window // 2
        for channel in range(features):
            self.fuse.weight[channel, centre * features + channel, 0, 0] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, window, rows, cols = x.shape
        centre = window // 2
        features = self.extract(x.reshape(batch * window, 1, rows, cols))
        features = features.reshape(batch, window, -1, rows, cols)
        reference = x[:, centre : centre + 1]
        anchor = self.embed(features[:, centre])
        weighted = []
        for j in range(window):
            aligned = features[:, j]
            if j != centre:
                aligned = warp(aligned, self.flow(reference, x[:, j : j + 1]))
            similarity = (self.embed(aligned) * anchor).sum(dim=1, keepdim=True)
            weighted.append(aligned * torch.sigmoid(similarity))
        fused = self.fuse(torch.cat(weighted, 1))  # linear: the centre alone is DFCAN's input
        trunk = self.groups(fused)  # as DFCAN's (its groups carry their own skips)
        result: torch.Tensor = torch.sigmoid(self.out(self.shuffle(F.gelu(self.tail(trunk)))))
        return result
