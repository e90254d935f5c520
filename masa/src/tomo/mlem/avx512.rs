//! Both projector passes for pairs of slices (`[f32; 2]` per pixel and ray) written for AVX-512, with both
//! slices of a ray or pixel in two neighbouring lanes: the forward pass takes eight rays a step, the backward
//! pass sixteen pixels.
//!
//! The portable passes ([`super::forward_line`], [`super::backward_line`]) read and write lines through
//! gathers or one ray at a time. Here a step loads the few pixels (or rays) it needs with one or two plain
//! loads and picks its lanes with permutes: eight consecutive rays, at least one pixel apart and at most
//! sqrt(2) apart, touch at most 12 consecutive pixels, and sixteen consecutive pixels own at most sixteen
//! consecutive rays.
//!
//! The backward pass is gathered pixel by pixel. Each pixel `p` has at most one ray of its own
//! (`floor(pos) = p`) and takes the share `w (1 - f)` from it, and the share `f w` of the ray just before it,
//! which is the own ray of pixel `p - 1`. `J`, the number of rays before `p`, is estimated in f32 (within
//! one) and made exact with two integer comparisons. Every value is rounded as the portable passes round it
//! (`((d + w) - f w) + f' w'` backward, `o + (a + f (b - a))` forward, no fused multiply-add), so the
//! results are the same bit for bit; `tests` checks that.

use std::arch::x86_64::*;

use super::{Projector, FRAC_BITS, FRAC_MASK, FRAC_SCALE, LINE_BLOCK};

/// Lane `2 m + s` holds slice `s` of ray (or pixel) `m` of a step.
#[inline]
#[target_feature(enable = "avx512f")]
fn pair_lanes() -> (__m512i, __m512i) {
    let m = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    let s = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
    (m, s)
}

/// The first `pairs` pairs of a step's lanes.
fn lanes(pairs: usize) -> __mmask16 {
    ((1u32 << (2 * pairs.min(8))) - 1) as __mmask16
}

#[inline]
#[target_feature(enable = "avx512f")]
fn lane0(v: __m512i) -> u32 {
    _mm_cvtsi128_si32(_mm512_castsi512_si128(v)) as u32
}

/// [`super::Projector::forward_loaded`] for a pair: `out` (angles x cols, every row in increasing position
/// order, zeroed) gets the unweighted line sums of one family's layout `img`.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn forward_family(
    p: &Projector,
    img: &[[f32; 2]],
    out: &mut [[f32; 2]],
    over_columns: bool,
) {
    let (n, l) = (p.n, p.n + 2);
    assert!(
        img.len() == n * l && out.len() == p.geom.len() * p.cols,
        "layout sizes"
    );
    for l0 in (0..n).step_by(LINE_BLOCK) {
        for (a, _) in p.family(over_columns) {
            for line in l0..(l0 + LINE_BLOCK).min(n) {
                let (r, rays) = p.line_rays(a, line);
                let data = &img[line * l..(line + 1) * l];
                // SAFETY: AVX-512F as this function.
                unsafe { forward_line(data, &mut out[rays], r.start, r.step) };
            }
        }
    }
}

/// Adds the rays' interpolated values along one padded line into `out` (rays in increasing position order,
/// every position below `data.len() - 1` pixels).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn forward_line(data: &[[f32; 2]], out: &mut [[f32; 2]], start: u32, step: u32) {
    let count = out.len();
    if count == 0 {
        return;
    }
    let last = (start as u64 + (count as u64 - 1) * step as u64) >> FRAC_BITS;
    assert!(last + 1 < data.len() as u64, "rays inside the padded line");
    let (m, s) = pair_lanes();
    let (startv, stepv) = (
        _mm512_set1_epi32(start as i32),
        _mm512_set1_epi32(step as i32),
    );
    let (mask, scale) = (
        _mm512_set1_epi32(FRAC_MASK as i32),
        _mm512_set1_ps(FRAC_SCALE),
    );
    let two = _mm512_set1_epi32(2);
    let (dp, op) = (data.as_ptr() as *const f32, out.as_mut_ptr() as *mut f32);
    for k0 in (0..count).step_by(8) {
        let pos = _mm512_add_epi32(
            startv,
            _mm512_mullo_epi32(_mm512_add_epi32(_mm512_set1_epi32(k0 as i32), m), stepv),
        );
        let i = _mm512_srli_epi32::<FRAC_BITS>(pos);
        let ib = lane0(i) as usize;
        // Pixels ib .. ib + 11 hold every pixel the eight rays read (lanes past the line end read zero).
        let avail = data.len() - ib;
        // SAFETY: both loads stay inside data (masked near its end).
        let (lo, hi) = unsafe {
            if avail >= 16 {
                (
                    _mm512_loadu_ps(dp.add(2 * ib)),
                    _mm512_loadu_ps(dp.add(2 * ib + 16)),
                )
            } else {
                (
                    _mm512_maskz_loadu_ps(lanes(avail), dp.add(2 * ib)),
                    _mm512_maskz_loadu_ps(lanes(avail.saturating_sub(8)), dp.add(2 * ib + 16)),
                )
            }
        };
        let idx = _mm512_add_epi32(
            _mm512_slli_epi32::<1>(_mm512_sub_epi32(i, _mm512_set1_epi32(ib as i32))),
            s,
        );
        let a = _mm512_permutex2var_ps(lo, idx, hi);
        let b = _mm512_permutex2var_ps(lo, _mm512_add_epi32(idx, two), hi);
        let f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(pos, mask)), scale);
        let v = _mm512_add_ps(a, _mm512_mul_ps(f, _mm512_sub_ps(b, a)));
        // SAFETY: both stay inside out (masked for the last rays).
        unsafe {
            if k0 + 8 <= count {
                let o = _mm512_loadu_ps(op.add(2 * k0));
                _mm512_storeu_ps(op.add(2 * k0), _mm512_add_ps(o, v));
            } else {
                let k = lanes(count - k0);
                let o = _mm512_maskz_loadu_ps(k, op.add(2 * k0));
                _mm512_mask_storeu_ps(op.add(2 * k0), k, _mm512_add_ps(o, v));
            }
        }
    }
}

/// [`super::backward_kernel`] for a pair: one family's lines of `A^T sino` from the position-ordered sinogram
/// `ordered` into its (zeroed) padded layout `img`.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn backward_family(
    p: &Projector,
    ordered: &[[f32; 2]],
    img: &mut [[f32; 2]],
    over_columns: bool,
) {
    let (n, l) = (p.n, p.n + 2);
    assert!(
        img.len() == n * l && ordered.len() == p.geom.len() * p.cols,
        "layout sizes"
    );
    for l0 in (0..n).step_by(LINE_BLOCK) {
        for (a, g) in p.family(over_columns) {
            for line in l0..(l0 + LINE_BLOCK).min(n) {
                let (r, rays) = p.line_rays(a, line);
                let data = &mut img[line * l..(line + 1) * l];
                // SAFETY: AVX-512F as this function.
                unsafe { backward_line(data, &ordered[rays], r.start, r.step, g.weight) };
            }
        }
    }
}

/// The adjoint of [`forward_line`] for one padded line, gathered pixel by pixel (see the module's overview).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn backward_line(
    data: &mut [[f32; 2]],
    src: &[[f32; 2]],
    start: u32,
    step: u32,
    weight: f32,
) {
    let count = src.len() as u32;
    if count == 0 {
        return;
    }
    let first = (start >> FRAC_BITS) as usize;
    let last = ((start as u64 + (count as u64 - 1) * step as u64) >> FRAC_BITS) as usize;
    assert!(last + 1 < data.len(), "rays inside the padded line");
    let pixels = last + 2 - first;
    // Positions relative to pixel `first`: pixel k of the span starts at k << FRAC_BITS.
    let s0 = start - ((first as u32) << FRAC_BITS);
    let s0_px = _mm512_set1_ps(s0 as f32 * FRAC_SCALE);
    let inv_step = _mm512_set1_ps(1.0 / (step as f32 * FRAC_SCALE));
    let (dup, s) = pair_lanes();
    let halves = [dup, _mm512_add_epi32(dup, _mm512_set1_epi32(8))];
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let (s0v, stepv) = (_mm512_set1_epi32(s0 as i32), _mm512_set1_epi32(step as i32));
    let (countv, countf) = (
        _mm512_set1_epi32(count as i32),
        _mm512_set1_ps(count as f32),
    );
    let (onev, unit) = (_mm512_set1_epi32(1 << FRAC_BITS), _mm512_set1_epi32(1));
    let (mask, scale) = (
        _mm512_set1_epi32(FRAC_MASK as i32),
        _mm512_set1_ps(FRAC_SCALE),
    );
    let (zero, zerof, weightv) = (
        _mm512_setzero_si512(),
        _mm512_setzero_ps(),
        _mm512_set1_ps(weight),
    );
    let (last_ray, all) = (_mm512_set1_epi32(count as i32 - 1), _mm512_set1_epi32(-1));
    let dp = data[first..].as_mut_ptr() as *mut f32;
    let sp = src.as_ptr() as *const f32;
    let mut prev_c = zerof;
    // Sixteen pixels a step, one per lane while their rays are found, then as two halves of eight pairs.
    for k0 in (0..pixels).step_by(16) {
        let k = _mm512_add_epi32(_mm512_set1_epi32(k0 as i32), lane);
        let pk = _mm512_slli_epi32::<FRAC_BITS>(k);
        // J within one, then exact.
        let q = _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(k), s0_px), inv_step);
        let q = _mm512_min_ps(
            _mm512_max_ps(_mm512_roundscale_ps::<0x0A>(q), zerof),
            countf,
        );
        let je = _mm512_cvttps_epi32(q);
        let pe = _mm512_add_epi32(s0v, _mm512_mullo_epi32(je, stepv));
        let low = _mm512_cmplt_epu32_mask(je, countv) & _mm512_cmplt_epu32_mask(pe, pk);
        let high = _mm512_cmpgt_epu32_mask(je, zero)
            & _mm512_cmpge_epu32_mask(_mm512_sub_epi32(pe, stepv), pk);
        // (low and high never hold together: pos is increasing.)
        let j = _mm512_mask_sub_epi32(_mm512_mask_add_epi32(je, low, je, unit), high, je, unit);
        let pj = _mm512_add_epi32(s0v, _mm512_mullo_epi32(j, stepv));
        let own = _mm512_cmplt_epu32_mask(j, countv)
            & _mm512_cmplt_epu32_mask(pj, _mm512_add_epi32(pk, onev));
        let fo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(pj, mask)), scale);
        let own_lanes = _mm512_maskz_mov_epi32(own, all);
        // The own rays of sixteen pixels are at most sixteen consecutive rays from jb.
        let jo = _mm512_min_epu32(j, last_ray);
        let jb = lane0(jo) as usize;
        // SAFETY: both loads stay inside src (masked for the last rays).
        let (r0, r1) = unsafe {
            if jb + 16 <= count as usize {
                (
                    _mm512_loadu_ps(sp.add(2 * jb)),
                    _mm512_loadu_ps(sp.add(2 * jb + 16)),
                )
            } else {
                let left = count as usize - jb;
                (
                    _mm512_maskz_loadu_ps(lanes(left), sp.add(2 * jb)),
                    _mm512_maskz_loadu_ps(lanes(left.saturating_sub(8)), sp.add(2 * jb + 16)),
                )
            }
        };
        let rel = _mm512_slli_epi32::<1>(_mm512_sub_epi32(jo, _mm512_set1_epi32(jb as i32)));
        for (h, half) in halves.into_iter().enumerate() {
            let k0 = k0 + 8 * h;
            if k0 >= pixels {
                break;
            }
            let idx = _mm512_or_si512(_mm512_permutexvar_epi32(half, rel), s);
            let owned = _mm512_test_epi32_mask(
                _mm512_permutexvar_epi32(half, own_lanes),
                _mm512_permutexvar_epi32(half, own_lanes),
            );
            let w = _mm512_maskz_mul_ps(owned, _mm512_permutex2var_ps(r0, idx, r1), weightv);
            let c = _mm512_mul_ps(_mm512_permutexvar_ps(half, fo), w);
            // The share carried from pixel p - 1's own ray (from the previous half's last pixel for the
            // first); zero where p - 1 has no ray.
            let c_prev = _mm512_castsi512_ps(_mm512_alignr_epi32::<14>(
                _mm512_castps_si512(c),
                _mm512_castps_si512(prev_c),
            ));
            // Pixels without a ray of their own add zeros: (d + 0) - 0 = d, as no layout value is ever -0
            // (they start at +0, and a sum or difference of IEEE values is -0 only if its first operand is).
            let sum = |d| _mm512_add_ps(_mm512_sub_ps(_mm512_add_ps(d, w), c), c_prev);
            // SAFETY: the load and the store stay inside data[first..] (masked for the last pixels).
            unsafe {
                if k0 + 8 <= pixels {
                    _mm512_storeu_ps(dp.add(2 * k0), sum(_mm512_loadu_ps(dp.add(2 * k0))));
                } else {
                    let kk = lanes(pixels - k0);
                    let d = _mm512_maskz_loadu_ps(kk, dp.add(2 * k0));
                    _mm512_mask_storeu_ps(dp.add(2 * k0), kk, sum(d));
                }
            }
            prev_c = c;
        }
    }
}
