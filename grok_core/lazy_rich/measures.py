"""What tells lazy training from rich: the NTK's alignment with the target and its movement, the weights'
movement and norm; and the lazy limit itself: kernel regression with K_0 and the linearised model under GD.

Every function is batched over a leading run axis. Alignment and relative movement do not depend on the
kernel's overall scale, so alpha^2 drops out of them.
"""
from __future__ import annotations

import torch


def centred(K: torch.Tensor) -> torch.Tensor:
    """H K H with H = I - 11^T/n: the kernel's row and column means removed ([R, n, n])."""
    return K - K.mean(-1, keepdim=True) - K.mean(-2, keepdim=True) + K.mean((-1, -2), keepdim=True)


def alignment(K: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Centred kernel-target alignment y~^T K~ y~ / (||K~||_F ||y~||^2), K~ = HKH and y~ = y - mean(y):
    1 when the centred kernel is a multiple of y~ y~^T. K [R, n, n], y [R, n] -> [R]."""
    Kc = centred(K)
    yc = y - y.mean(-1, keepdim=True)
    return torch.einsum("ra,rab,rb->r", yc, Kc, yc) / (Kc.flatten(1).norm(dim=-1) * (yc * yc).sum(-1))


def relative_change(A: torch.Tensor, A0: torch.Tensor) -> torch.Tensor:
    """||A - A0||_F / ||A0||_F per run ([R, ...] -> [R]): kernel movement for kernels, parameter movement for W."""
    return (A - A0).flatten(1).norm(dim=-1) / A0.flatten(1).norm(dim=-1)


def weight_norm(W: torch.Tensor) -> torch.Tensor:
    """||W||_F per run, [R, N, D] -> [R]."""
    return W.flatten(1).norm(dim=-1)


def _eig(K_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (clipped at 0) and eigenvectors of the symmetric train kernel [R, P, P]."""
    lam, V = torch.linalg.eigh(0.5 * (K_train + K_train.transpose(1, 2)))
    return lam.clamp(min=0), V


def kernel_regression(K_train, K_test_train, r0, f0_test, rcond: float = 1e-12) -> torch.Tensor:
    """The lazy limit: test outputs f0_test + K_xX K_XX^+ r0, where r0 = y - f0 on the train inputs is the fit
    that remains at the start (K_XX^+ the pseudo-inverse, eigenvalues below rcond * the largest dropped).
    K_train [R, P, P], K_test_train [R, n, P], r0 [R, P], f0_test [R, n] -> [R, n]."""
    lam, V = _eig(K_train)
    keep = lam > rcond * lam[:, -1:]
    inv = torch.where(keep, 1 / torch.where(keep, lam, 1), 0)
    coef = V @ (inv * (V.transpose(1, 2) @ r0[..., None])[..., 0])[..., None]
    return f0_test + (K_test_train @ coef)[..., 0]


def linearised_outputs(K_train, K_test_train, r0, f0_train, f0_test, rate, steps) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of the linearised model f0 + J0 (W - W0), trained by the same GD, at the given steps, in closed
    form: on the train inputs the residual obeys r_{t+1} = (I - rate K_XX) r_t, so r_t = V (1 - rate lam)^t V^T r0,
    and the test outputs are f0 + K_xX V diag((1 - (1 - rate lam)^t) / lam) V^T r0 (limit rate t at lam = 0).
    rate [R] is the step on K: 2 lr N / (P alpha^2) for our loss. -> ([R, T, P], [R, T, n]) train and test outputs."""
    lam, V = _eig(K_train)
    c = (V.transpose(1, 2) @ r0[..., None])[..., 0]                       # [R, P]
    t = torch.as_tensor(steps, dtype=lam.dtype, device=lam.device)[None, :, None]
    x = (rate[:, None, None] * lam[:, None, :])                          # [R, 1, P]
    # (1 - rate lam)^t, [R, T, P]: through log1p/expm1 where 1 - rate lam > 0 (exact for small rate lam), else by
    # power (1 < rate lam < 2 oscillates and still converges)
    safe = torch.log1p(-x.clamp(max=0.5))
    decay = torch.where(x < 0.5, torch.exp(t * safe), torch.pow(1 - x, t))
    gone = torch.where(x < 0.5, -torch.expm1(t * safe), 1 - decay)      # 1 - (1 - rate lam)^t
    per = torch.where(lam[:, None, :] > 0, gone / torch.where(lam > 0, lam, 1)[:, None, :], rate[:, None, None] * t)
    train = f0_train[:, None] + ((1 - decay) * c[:, None]) @ V.transpose(1, 2)
    test = f0_test[:, None] + (per * c[:, None]) @ (K_test_train @ V).transpose(1, 2)
    return train, test
