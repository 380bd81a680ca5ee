"""DFGAN's adversarial loss: DFCAN's content loss plus a discriminator that is trained alongside.

As the authors' ``train_DFGAN.py`` (github.com/qc17-THU/DL-SR): the generator's loss is
``MSE + 0.1·(1 − SSIM)`` plus ``0.1 x`` the binary cross-entropy of the discriminator calling its
output real; the discriminator learns real (the SR truth) against fake (the generator's output)
with binary cross-entropy, at its own rate (Adam, 1e-4), once for every 3 generator steps.
The paper's methods give the discriminator 1e-4 and the generator 2e-5; the authors' script
has the two swapped. The discriminator here follows the paper, the recipes' generator rate the
script (1e-4): a CPU fine-tune of 2000 steps at 2e-5 would barely move the generator.

The loss is a module holding the discriminator, so the :class:`Trainer` moves it with the
network and keeps its weights in the checkpoint (a resumed run continues against the same
discriminator; only the discriminator's Adam moments restart). Its parameters take no part in
the generator's step: they are frozen outside the discriminator's own update, so they never
hold a gradient when the generator's optimizer steps.
"""

from __future__ import annotations

import torch
from torch import nn

from live_restore.models import DFGANDiscriminator

from ._losses import mse_ssim_loss

__all__ = ["AdversarialLoss"]


class AdversarialLoss(nn.Module):
    """``loss(generator, inputs, targets)``: steps the discriminator, returns the G loss."""

    def __init__(
        self,
        discriminator: DFGANDiscriminator,
        learning_rate: float = 1e-4,
        adversarial_weight: float = 0.1,
        generator_steps_per_discriminator_step: int = 3,
    ) -> None:
        super().__init__()
        self.discriminator = discriminator.requires_grad_(False)
        self.adversarial_weight = adversarial_weight
        self.every = generator_steps_per_discriminator_step
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=learning_rate)
        self._calls = 0
        # running sums since the last scores(): D's probability for real and for fake, and
        # the generator's content and adversarial terms
        self._sums = {"d_real": 0.0, "d_fake": 0.0, "content": 0.0, "adversarial": 0.0}
        self._counts = {"d": 0, "g": 0}
        self._last = {"d_real": 0.5, "d_fake": 0.5, "content": 0.0, "adversarial": 0.0}

    def forward(
        self, generator: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        prediction = generator(inputs)
        if self._calls % self.every == 0:
            self._discriminator_step(prediction.detach(), targets)
        self._calls += 1
        content = mse_ssim_loss(prediction, targets)
        judged = self.discriminator.logit(prediction)
        adversarial = nn.functional.binary_cross_entropy_with_logits(
            judged, torch.ones_like(judged)
        )
        self._sums["content"] += float(content.detach())
        self._sums["adversarial"] += float(adversarial.detach())
        self._counts["g"] += 1
        return content + self.adversarial_weight * adversarial

    def _discriminator_step(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        self.discriminator.requires_grad_(True)
        real_logit, fake_logit = self.discriminator.logit(real), self.discriminator.logit(fake)
        bce = nn.functional.binary_cross_entropy_with_logits
        loss = 0.5 * (
            bce(real_logit, torch.ones_like(real_logit))
            + bce(fake_logit, torch.zeros_like(fake_logit))
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        # no gradient left behind for the generator's optimizer to act on
        self.optimizer.zero_grad(set_to_none=True)
        self.discriminator.requires_grad_(False)
        self._sums["d_real"] += float(torch.sigmoid(real_logit.detach()).mean())
        self._sums["d_fake"] += float(torch.sigmoid(fake_logit.detach()).mean())
        self._counts["d"] += 1

    def scores(self) -> dict[str, float]:
        """Means since the last call: D(real), D(fake), content and adversarial loss."""
        d, g = self._counts["d"], self._counts["g"]
        # with no step of that kind since the last call, the last means stand
        if d:
            self._last.update({k: self._sums[k] / d for k in ("d_real", "d_fake")})
        if g:
            self._last.update({k: self._sums[k] / g for k in ("content", "adversarial")})
        out = dict(self._last)
        self._sums = dict.fromkeys(self._sums, 0.0)
        self._counts = dict.fromkeys(self._counts, 0)
        return out
