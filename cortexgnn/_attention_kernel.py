r"""C++/OpenMP source of the CSR attention kernel, compiled on first use.

The kernel computes, for every destination node ``i`` (rows of a CSR sorted by target),
batch entry ``b`` and head ``h``

.. math::
    s_e = \tau\, \tilde q_{i} \cdot x_{j},\quad
    \alpha_e = \frac{e^{s_e}}{\sum_{e' \in \mathrm{in}(i)} e^{s_{e'}}},\quad
    o_i = \sum_{e \in \mathrm{in}(i)} w_e\, \alpha_e\, x_j

node by node: the scores of its in-edges, their softmax, then the weighted sum of the
sources, whose rows are still in cache (no ``[E, B, F]`` temporary). It keeps
:math:`\alpha` (``[E, B, H]``: ``k H / F`` of the node tensor, 1/16 at the article's
sizes) for the backward, which is two passes: one over destinations (gradients of
queries and edge weights, per-edge :math:`w\alpha` and :math:`\partial L / \partial s`
kept as ``[E, B, H]`` scratch) and one over sources through the transposed CSR (gradient
of ``x``, a gather: no atomics). Inputs must be contiguous float32 on the CPU.

Only :mod:`cortexgnn.fused_attention` imports this module.
"""

from __future__ import annotations

import functools
import os
import tempfile

__all__ = ["load_kernel"]

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <limits>
#include <vector>

namespace {

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t f = 0; f < n; ++f) s += a[f] * b[f];
  return s;
}

inline void axpy(float a, const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t f = 0; f < n; ++f) y[f] += a * x[f];
}

}  // namespace

// q [N, B, H, F], x [N, B, F], ptr [N + 1], col [E], w [E] or empty. FC: F known at
// compile time (fully unrolled inner loops) or 0 for any F.
template <int64_t FC>
std::vector<torch::Tensor> forward_impl(torch::Tensor q, torch::Tensor x, torch::Tensor ptr,
                                        torch::Tensor col, torch::Tensor w, double scale) {
  const int64_t N = q.size(0), B = q.size(1), H = q.size(2), F = FC ? FC : q.size(3);
  auto out = torch::zeros_like(q);
  auto alpha = torch::empty({col.size(0), B, H}, q.options());
  const float* qp = q.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const int64_t* pp = ptr.data_ptr<int64_t>();
  const int64_t* cp = col.data_ptr<int64_t>();
  const float* wp = w.numel() ? w.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  float* ap = alpha.data_ptr<float>();
  const float tau = static_cast<float>(scale);
  const int64_t BH = B * H;
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> m(BH), l(BH);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t e0 = pp[i], e1 = pp[i + 1];
      if (e0 == e1) continue;  // no in-edge: the output stays 0
      const float* qi = qp + i * BH * F;
      float* oi = op + i * BH * F;
      // 1. scores of all in-edges (independent dot products), kept in alpha
      for (int64_t e = e0; e < e1; ++e) {
        const float* xj = xp + cp[e] * B * F;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t h = 0; h < H; ++h)
            ap[e * BH + b * H + h] = tau * dot(qi + (b * H + h) * F, xj + b * F, F);
      }
      // 2. softmax over the node's in-edges, for every (b, h) at once
      std::fill(m.begin(), m.end(), -std::numeric_limits<float>::infinity());
      std::fill(l.begin(), l.end(), 0.f);
      for (int64_t e = e0; e < e1; ++e)
        for (int64_t bh = 0; bh < BH; ++bh) m[bh] = std::max(m[bh], ap[e * BH + bh]);
      for (int64_t e = e0; e < e1; ++e)
        for (int64_t bh = 0; bh < BH; ++bh) {
          const float p = std::exp(ap[e * BH + bh] - m[bh]);
          ap[e * BH + bh] = p;
          l[bh] += p;
        }
      for (int64_t bh = 0; bh < BH; ++bh) l[bh] = 1.f / l[bh];
      // 3. weighted sum of the sources (x_j read again, from cache)
      for (int64_t e = e0; e < e1; ++e) {
        const float* xj = xp + cp[e] * B * F;
        const float we = wp ? wp[e] : 1.f;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t h = 0; h < H; ++h) {
            const int64_t bh = b * H + h;
            const float a = ap[e * BH + bh] * l[bh];
            ap[e * BH + bh] = a;
            axpy(a * we, xj + b * F, oi + bh * F, F);
          }
      }
    }
  });
  return {out, alpha};
}

// Gradients of q, x and w given grad_out [N, B, H, F] and the forward's out and alpha.
// tptr [N + 1] / tedge [E] / tdst [E]: the CSR of the transposed graph (edges grouped by
// source), tedge the CSR position of each such edge and tdst its destination.
template <int64_t FC>
std::vector<torch::Tensor> backward_impl(torch::Tensor grad_out, torch::Tensor q,
                                         torch::Tensor x, torch::Tensor out, torch::Tensor alpha,
                                         torch::Tensor ptr, torch::Tensor col, torch::Tensor w,
                                         torch::Tensor tptr, torch::Tensor tedge,
                                         torch::Tensor tdst, double scale) {
  const int64_t N = q.size(0), B = q.size(1), H = q.size(2), F = FC ? FC : q.size(3);
  const int64_t E = col.size(0), BH = B * H;
  auto grad_q = torch::zeros_like(q);
  auto grad_x = torch::zeros_like(x);
  auto grad_w = torch::zeros({E}, q.options());
  auto alpha_w = torch::empty({E, B, H}, q.options());
  auto dscore = torch::empty({E, B, H}, q.options());
  const float* gp = grad_out.data_ptr<float>();
  const float* qp = q.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float* op = out.data_ptr<float>();
  const float* alp = alpha.data_ptr<float>();
  const int64_t* pp = ptr.data_ptr<int64_t>();
  const int64_t* cp = col.data_ptr<int64_t>();
  const float* wp = w.numel() ? w.data_ptr<float>() : nullptr;
  const int64_t* tpp = tptr.data_ptr<int64_t>();
  const int64_t* tep = tedge.data_ptr<int64_t>();
  const int64_t* tdp = tdst.data_ptr<int64_t>();
  float* gqp = grad_q.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  float* gwp = grad_w.data_ptr<float>();
  float* awp = alpha_w.data_ptr<float>();
  float* dsp = dscore.data_ptr<float>();
  const float tau = static_cast<float>(scale);
  // Pass 1, by destination: dL/ds_e = alpha_e (w_e g_i.x_j - g_i.o_i).
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> delta(BH);
    for (int64_t i = begin; i < end; ++i) {
      const float* gi = gp + i * BH * F;
      const float* qi = qp + i * BH * F;
      float* gqi = gqp + i * BH * F;
      for (int64_t bh = 0; bh < BH; ++bh) delta[bh] = dot(gi + bh * F, op + (i * BH + bh) * F, F);
      for (int64_t e = pp[i]; e < pp[i + 1]; ++e) {
        const float* xj = xp + cp[e] * B * F;
        const float we = wp ? wp[e] : 1.f;
        float gw = 0.f;
        for (int64_t b = 0; b < B; ++b)  // independent dot products first
          for (int64_t h = 0; h < H; ++h) {
            const int64_t bh = b * H + h;
            const float a = alp[e * BH + bh];
            const float gd = dot(gi + bh * F, xj + b * F, F);
            dsp[e * BH + bh] = a * (we * gd - delta[bh]);
            awp[e * BH + bh] = a * we;
            gw += a * gd;
          }
        gwp[e] = gw;
        for (int64_t b = 0; b < B; ++b)  // then the query gradient, from cache
          for (int64_t h = 0; h < H; ++h)
            axpy(tau * dsp[e * BH + b * H + h], xj + b * F, gqi + (b * H + h) * F, F);
      }
    }
  });
  // Pass 2, by source: dL/dx_j = sum_e (w_e alpha_e g_i + tau ds_e q_i), a gather.
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      float* gxj = gxp + j * B * F;
      for (int64_t t = tpp[j]; t < tpp[j + 1]; ++t) {
        const int64_t e = tep[t], i = tdp[t];
        const float* gi = gp + i * BH * F;
        const float* qi = qp + i * BH * F;
        for (int64_t b = 0; b < B; ++b) {
          float* gv = gxj + b * F;
          for (int64_t h = 0; h < H; ++h) {
            const int64_t bh = b * H + h;
            const float a = awp[e * BH + bh], d = tau * dsp[e * BH + bh];
            const float* gu = gi + bh * F;
            const float* qu = qi + bh * F;
#pragma omp simd
            for (int64_t f = 0; f < F; ++f) gv[f] += a * gu[f] + d * qu[f];
          }
        }
      }
    }
  });
  return {grad_q, grad_x, grad_w};
}

std::vector<torch::Tensor> forward(torch::Tensor q, torch::Tensor x, torch::Tensor ptr,
                                   torch::Tensor col, torch::Tensor w, double scale) {
  switch (q.size(3)) {
    case 64: return forward_impl<64>(q, x, ptr, col, w, scale);
    case 128: return forward_impl<128>(q, x, ptr, col, w, scale);
    default: return forward_impl<0>(q, x, ptr, col, w, scale);
  }
}

std::vector<torch::Tensor> backward(torch::Tensor grad_out, torch::Tensor q, torch::Tensor x,
                                    torch::Tensor out, torch::Tensor alpha, torch::Tensor ptr,
                                    torch::Tensor col, torch::Tensor w, torch::Tensor tptr,
                                    torch::Tensor tedge, torch::Tensor tdst, double scale) {
#define CORTEX_BACKWARD(FC) \
  backward_impl<FC>(grad_out, q, x, out, alpha, ptr, col, w, tptr, tedge, tdst, scale)
  switch (q.size(3)) {
    case 64: return CORTEX_BACKWARD(64);
    case 128: return CORTEX_BACKWARD(128);
    default: return CORTEX_BACKWARD(0);
  }
#undef CORTEX_BACKWARD
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "CSR attention forward (out, alpha)");
  m.def("backward", &backward, "CSR attention backward (grad_q, grad_x, grad_w)");
}
"""


@functools.lru_cache(maxsize=1)
def load_kernel():
    """Compile (first call, about a minute) or load the cached extension module.

    Returns:
        The extension module with ``forward`` and ``backward``, or ``None`` when it cannot
        be built here (no compiler or ninja); callers then use the PyTorch path.
    """
    try:
        from torch.utils.cpp_extension import load_inline

        build_dir = os.path.join(tempfile.gettempdir(), "cortexgnn_kernels")
        os.makedirs(build_dir, exist_ok=True)
        return load_inline(
            name="cortexgnn_csr_attention_v4",
            cpp_sources=[_SOURCE],
            extra_cflags=["-O3", "-march=native", "-fopenmp", "-ffp-contract=fast"],
            extra_ldflags=["-fopenmp"],
            build_directory=build_dir,
            verbose=False,
        )
    except Exception:  # noqa: BLE001 - any build failure means "use the fallback"
        return None
