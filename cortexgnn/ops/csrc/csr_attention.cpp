// CSR graph attention, forward and backward: the "cpp" backend of
// cortexgnn/ops/attention.py (the maths is in its docstring); built and cached by
// cortexgnn/ops/kernel.py on first use (torch.utils.cpp_extension.load).
//
// For every destination node i (rows of a CSR sorted by target), batch entry b and head
// h: s_e = tau q_i . x_j, alpha_e = softmax over i's in-edges, o_i = sum_e w_e m_e
// alpha_e x_j, node by node: the scores of its in-edges, their softmax, then the
// weighted sum of the sources, whose rows are still in cache, accumulated in one scratch
// row (no [E, B, F] temporary). Wide heads go head by head (the row stays in registers);
// many narrow heads (projection="first" with 8 channels, say) go edge by edge, all heads
// of a source at once. The value row x_j is shared by the heads (x [N, B, 1, F]) or one
// per head (x [N, B, H, F]); w_e are optional edge weights and m_e an optional
// attention-dropout multiplier per coefficient ([E, B, H]). alpha ([E, B, H]) is kept for
// the backward, which is two passes: one over destinations (gradients of queries and
// edge weights, per-edge w m alpha and dL/ds kept as [E, B, H] scratch) and one over
// sources through the transposed CSR (gradient of x, a gather: no atomics). Inputs must
// be contiguous float32 on the CPU.
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

// q [N, B, H, F] (N targets); x [NS, B, HX, F] (NS sources) with HX = 1 (one value row
// shared by the heads) or HX = H (a row per head); ptr [N + 1], col [E] (rows of x);
// w [E] or empty; m [E, B, H] or empty (attention dropout: 0 or 1 / (1 - p) per
// coefficient). FC: F known at compile time (fully unrolled inner loops) or 0 for any F.
// The coefficient of edge e is alpha_e * w_e * m_e; alpha (returned for the backward) is
// the softmax alone.
template <int64_t FC>
std::vector<torch::Tensor> forward_impl(torch::Tensor q, torch::Tensor x, torch::Tensor ptr,
                                        torch::Tensor col, torch::Tensor w, torch::Tensor m,
                                        double scale) {
  const int64_t N = q.size(0), B = q.size(1), H = q.size(2), F = FC ? FC : q.size(3);
  const int64_t HX = x.size(2), hx_step = HX == 1 ? 0 : F;  // head offset inside a value row
  auto out = torch::empty_like(q);  // every row is written below
  auto alpha = torch::empty({col.size(0), B, H}, q.options());
  const float* qp = q.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const int64_t* pp = ptr.data_ptr<int64_t>();
  const int64_t* cp = col.data_ptr<int64_t>();
  const float* wp = w.numel() ? w.data_ptr<float>() : nullptr;
  const float* mp = m.numel() ? m.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  float* ap = alpha.data_ptr<float>();
  const float tau = static_cast<float>(scale);
  const int64_t BH = B * H, XR = HX * F;  // XR: floats per (node, batch) value block
  // Wide heads (F >= 32, or one head) go head by head with the output row in registers
  // (fixed F); many narrow heads go edge-major, every head of a source block at once.
  const bool head_major = H == 1 || F >= 32;
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    alignas(64) float fixed[FC ? FC : 1];
    std::vector<float> acc(H * F), mx(H), inv(H);  // one node's output rows and softmax stats
    for (int64_t i = begin; i < end; ++i) {
      const int64_t e0 = pp[i], e1 = pp[i + 1];
      if (e0 == e1) {  // no in-edge: zero output
        std::fill(op + i * BH * F, op + (i + 1) * BH * F, 0.f);
        continue;
      }
      for (int64_t b = 0; b < B; ++b) {
        const float* qi = qp + (i * B + b) * H * F;  // [H, F]
        const float* xb = xp + b * XR;  // + cp[e] * B * XR: source block [HX, F]
        float* ob = op + (i * B + b) * H * F;
        const int64_t bh0 = b * H;
        if (head_major) {
          for (int64_t h = 0; h < H; ++h) {
            const float* qv = qi + h * F;
            const float* xh = xb + h * hx_step;
            float* row = FC ? fixed : acc.data();
            float m = -std::numeric_limits<float>::infinity(), sum = 0.f;
            for (int64_t e = e0; e < e1; ++e) {
              const float s = tau * dot(qv, xh + cp[e] * B * XR, F);
              ap[e * BH + bh0 + h] = s;
              m = std::max(m, s);
            }
            for (int64_t e = e0; e < e1; ++e) {
              const float p = std::exp(ap[e * BH + bh0 + h] - m);
              ap[e * BH + bh0 + h] = p;
              sum += p;
            }
            const float norm = 1.f / sum;
            for (int64_t f = 0; f < F; ++f) row[f] = 0.f;
            for (int64_t e = e0; e < e1; ++e) {
              const float a = ap[e * BH + bh0 + h] * norm;
              ap[e * BH + bh0 + h] = a;
              float c = wp ? a * wp[e] : a;
              if (mp) c *= mp[e * BH + bh0 + h];
              axpy(c, xh + cp[e] * B * XR, row, F);
            }
            for (int64_t f = 0; f < F; ++f) ob[h * F + f] = row[f];
          }
          continue;
        }
        // Edge-major: each source block is read once per pass for all heads. Scores
        // (independent dot products) and their running max first...
        std::fill(mx.begin(), mx.end(), -std::numeric_limits<float>::infinity());
        for (int64_t e = e0; e < e1; ++e) {
          const float* xj = xb + cp[e] * B * XR;
          float* se = ap + e * BH + bh0;
          for (int64_t h = 0; h < H; ++h) {
            se[h] = tau * dot(qi + h * F, xj + h * hx_step, F);
            mx[h] = std::max(mx[h], se[h]);
          }
        }
        // ...then exponentials and their sums per head...
        std::fill(inv.begin(), inv.end(), 0.f);
        for (int64_t e = e0; e < e1; ++e) {
          float* se = ap + e * BH + bh0;
          for (int64_t h = 0; h < H; ++h) {
            se[h] = std::exp(se[h] - mx[h]);
            inv[h] += se[h];
          }
        }
        for (int64_t h = 0; h < H; ++h) inv[h] = 1.f / inv[h];
        // ...then the weighted sum of the sources (still in cache), stored once.
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int64_t e = e0; e < e1; ++e) {
          const float* xj = xb + cp[e] * B * XR;
          float* se = ap + e * BH + bh0;
          const float* me = mp ? mp + e * BH + bh0 : nullptr;
          const float we = wp ? wp[e] : 1.f;
          for (int64_t h = 0; h < H; ++h) {
            const float a = se[h] * inv[h];
            se[h] = a;
            axpy(me ? a * we * me[h] : a * we, xj + h * hx_step, acc.data() + h * F, F);
          }
        }
        std::copy(acc.begin(), acc.end(), ob);
      }
    }
  });
  return {out, alpha};
}

// Gradients of q, x and w given grad_out [N, B, H, F] and the forward's out and alpha.
// tptr [NS + 1] / tedge [E] / tdst [E]: the CSR of the transposed graph (edges grouped by
// source), tedge the CSR position of each such edge and tdst its destination.
template <int64_t FC>
std::vector<torch::Tensor> backward_impl(torch::Tensor grad_out, torch::Tensor q,
                                         torch::Tensor x, torch::Tensor out, torch::Tensor alpha,
                                         torch::Tensor ptr, torch::Tensor col, torch::Tensor w,
                                         torch::Tensor m, torch::Tensor tptr, torch::Tensor tedge,
                                         torch::Tensor tdst, double scale) {
  const int64_t N = q.size(0), B = q.size(1), H = q.size(2), F = FC ? FC : q.size(3);
  const int64_t NS = x.size(0), HX = x.size(2), hx_step = HX == 1 ? 0 : F;
  const int64_t E = col.size(0), BH = B * H, XR = HX * F;
  auto grad_q = torch::empty_like(q);  // both passes write every row
  auto grad_x = torch::empty_like(x);
  auto grad_w = torch::zeros({E}, q.options());
  auto coef = torch::empty({E, B, H}, q.options());
  auto dscore = torch::empty({E, B, H}, q.options());
  const float* gp = grad_out.data_ptr<float>();
  const float* qp = q.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float* op = out.data_ptr<float>();
  const float* alp = alpha.data_ptr<float>();
  const int64_t* pp = ptr.data_ptr<int64_t>();
  const int64_t* cp = col.data_ptr<int64_t>();
  const float* wp = w.numel() ? w.data_ptr<float>() : nullptr;
  const float* mp = m.numel() ? m.data_ptr<float>() : nullptr;
  const int64_t* tpp = tptr.data_ptr<int64_t>();
  const int64_t* tep = tedge.data_ptr<int64_t>();
  const int64_t* tdp = tdst.data_ptr<int64_t>();
  float* gqp = grad_q.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  float* gwp = grad_w.data_ptr<float>();
  float* cfp = coef.data_ptr<float>();
  float* dsp = dscore.data_ptr<float>();
  const float tau = static_cast<float>(scale);
  // Pass 1, by destination: with c_e = w_e m_e, dL/ds_e = alpha_e (c_e g_i.x_j - g_i.o_i)
  // (g_i.o_i = sum_e alpha_e c_e g_i.x_j); each edge streams the [B, HX, F] block of x_j.
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> delta(BH);
    for (int64_t i = begin; i < end; ++i) {
      const float* gi = gp + i * BH * F;
      float* gqi = gqp + i * BH * F;
      std::fill(gqi, gqi + BH * F, 0.f);
      for (int64_t bh = 0; bh < BH; ++bh) delta[bh] = dot(gi + bh * F, op + (i * BH + bh) * F, F);
      for (int64_t e = pp[i]; e < pp[i + 1]; ++e) {
        const float* xj = xp + cp[e] * B * XR;
        const float we = wp ? wp[e] : 1.f;
        float gw = 0.f;
        for (int64_t b = 0; b < B; ++b)  // independent dot products first
          for (int64_t h = 0; h < H; ++h) {
            const int64_t bh = b * H + h;
            const float a = alp[e * BH + bh];
            const float ma = mp ? a * mp[e * BH + bh] : a;
            const float gd = dot(gi + bh * F, xj + b * XR + h * hx_step, F);
            dsp[e * BH + bh] = ma * we * gd - a * delta[bh];
            cfp[e * BH + bh] = ma * we;
            gw += ma * gd;
          }
        gwp[e] = gw;
        for (int64_t b = 0; b < B; ++b)  // then the query gradient, from cache
          for (int64_t h = 0; h < H; ++h)
            axpy(tau * dsp[e * BH + b * H + h], xj + b * XR + h * hx_step, gqi + (b * H + h) * F,
                 F);
      }
    }
  });
  // Pass 2, by source: dL/dx_j = sum_e (w_e m_e alpha_e g_i + tau ds_e q_i), a gather;
  // each edge streams the contiguous [B, H, F] blocks of g_i and q_i.
  at::parallel_for(0, NS, 1, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      float* gxj = gxp + j * B * XR;
      std::fill(gxj, gxj + B * XR, 0.f);
      for (int64_t t = tpp[j]; t < tpp[j + 1]; ++t) {
        const int64_t e = tep[t], i = tdp[t];
        for (int64_t b = 0; b < B; ++b) {
          for (int64_t h = 0; h < H; ++h) {
            float* gv = gxj + b * XR + h * hx_step;
            const int64_t bh = b * H + h;
            const float a = cfp[e * BH + bh], d = tau * dsp[e * BH + bh];
            const float* gu = gp + (i * BH + bh) * F;
            const float* qu = qp + (i * BH + bh) * F;
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
                                   torch::Tensor col, torch::Tensor w, torch::Tensor m,
                                   double scale) {
  switch (q.size(3)) {
    case 8: return forward_impl<8>(q, x, ptr, col, w, m, scale);
    case 64: return forward_impl<64>(q, x, ptr, col, w, m, scale);
    case 128: return forward_impl<128>(q, x, ptr, col, w, m, scale);
    default: return forward_impl<0>(q, x, ptr, col, w, m, scale);
  }
}

std::vector<torch::Tensor> backward(torch::Tensor grad_out, torch::Tensor q, torch::Tensor x,
                                    torch::Tensor out, torch::Tensor alpha, torch::Tensor ptr,
                                    torch::Tensor col, torch::Tensor w, torch::Tensor m,
                                    torch::Tensor tptr, torch::Tensor tedge, torch::Tensor tdst,
                                    double scale) {
#define CORTEX_BACKWARD(FC) \
  backward_impl<FC>(grad_out, q, x, out, alpha, ptr, col, w, m, tptr, tedge, tdst, scale)
  switch (q.size(3)) {
    case 8: return CORTEX_BACKWARD(8);
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
