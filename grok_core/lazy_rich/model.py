"""The network f(x) = alpha * (1/N) sum_i phi(w_i.x), phi(h) = h + (eps/2) h^2, batched over a leading run axis,
with its gradient and its neural tangent kernel in closed form.

Only W [N, D] is trained (the readout is fixed at 1/N). With h_i = w_i.x, df/dw_i = (alpha/N) phi'(h_i) x, so
the NTK is K(x, x') = (alpha^2/N^2) sum_i phi'(h_i) phi'(h_i') x.x'. `empirical_ntk` computes the same kernel from
the definition with torch.func, for any model function; the tests check the closed form against it.
"""
from __future__ import annotations

import torch
from torch.func import jacrev, vmap


def init_weights(seed: int, width: int, d: int) -> torch.Tensor:
    """W_0 ~ N(0, I): [N, D] in float64 from the run's seed (the same on every device)."""
    return torch.randn(width, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def phi(h: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return h + 0.5 * eps * h * h


def phi_prime(h: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return 1 + eps * h


def raw_output(W: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_i phi(w_i.x) for runs W [R, N, D], inputs x [R, n, D], eps [R, 1, 1] -> [R, n] (no alpha)."""
    return phi(x @ W.transpose(1, 2), eps).mean(-1)


def output_and_grad(W, x, y, f0, alpha, eps) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per run: the outputs alpha (g(x) - f0) [R, n], the loss mean((f - y)^2) / alpha^2 [R] and its gradient
    with respect to W [R, N, D] (alpha [R, 1], eps [R, 1, 1]; f0 is 0 or g(x) at W_0)."""
    H = x @ W.transpose(1, 2)                                           # [R, n, N]
    f = alpha * (phi(H, eps).mean(-1) - f0)
    r = f - y
    n, N = x.shape[1], W.shape[1]
    loss = (r * r).mean(-1) / alpha[:, 0] ** 2
    grad = (phi_prime(H, eps) * r[..., None]).transpose(1, 2) @ x * (2 / (n * N) / alpha[..., None])
    return f, loss, grad


def ntk(W: torch.Tensor, x: torch.Tensor, x2: torch.Tensor, alpha, eps) -> torch.Tensor:
    """The NTK in closed form, K[r, a, b] = (alpha^2/N^2) sum_i phi'(w_i.x_a) phi'(w_i.x2_b) x_a.x2_b, for runs
    W [R, N, D], inputs x [R, n, D] and x2 [R, m, D], alpha [R, 1] and eps [R, 1, 1] -> [R, n, m]."""
    N = W.shape[1]
    A = phi_prime(x @ W.transpose(1, 2), eps)
    B = phi_prime(x2 @ W.transpose(1, 2), eps)
    return (A @ B.transpose(1, 2)) * (x @ x2.transpose(1, 2)) * (alpha[..., None] / N) ** 2


def empirical_ntk(f, W: torch.Tensor, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """<df(x_a)/dW, df(x2_b)/dW> from the definition: f(W, x [n, D]) -> [n] for one run's W, by torch.func
    (the Jacobians by reverse mode, one input at a time) -> [n, m]."""
    def jac(points):
        return vmap(lambda p: jacrev(lambda w: f(w, p[None])[0])(W))(points).flatten(1)
    return jac(x) @ jac(x2).T
