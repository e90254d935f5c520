//! ML-EM with a discrete ray-driven (Joseph) projector and its exact adjoint.
//!
//! `x <- x * A^T(y / A x) / A^T 1`, where A integrates the image along each ray: a ray steps line by line (image
//! columns when it runs closer to horizontal, rows otherwise), interpolates linearly between the two pixels it
//! passes between, and weighs each step by the path length per line (`1 / |sin|` or `1 / |cos|`). The adjoint
//! replays exactly the same steps with the same weights, scattering instead of gathering, so
//! `<A x, y> = <x, A^T y>` holds to rounding.
//!
//! Layout for speed: for each family of angles the image is held with its lines contiguous (row-major for rows,
//! transposed for columns) and padded with a zero at each end, so the inner loop over rays reads and writes one
//! line held in L1 cache, with no bounds branches. Both passes are tiled over lines (a block of 32 lines meets
//! every angle of its family before the next block: the block and the sinogram stay in L2, where the whole
//! layout would not) and compiled for AVX-512 / AVX2 where the CPU has them ([`crate::simd`]); neither changes a
//! bit of the result. Rays with zero projection, and pixels no ray reaches, stay at zero: no division by zero,
//! no NaN.
//!
//! Several slices share one traversal: images and sinograms may be interleaved pixel by pixel (`[f32; S]`), so
//! ray positions and weights are computed once for all of them ([`Mlem::reconstruct_pair`]). Pairs of slices,
//! what MASA reconstructs, have both passes written for AVX-512 in `avx512` (eight rays or sixteen pixels a step,
//! lanes picked with permutes; the backward pass gathered pixel by pixel instead of scattered ray by ray), used where
//! the CPU has it, with the same bits as the portable passes here. Ray positions are 20-bit fixed point in
//! `u32`, which bounds images to [`MAX_N`] pixels a side.
//!
//! [`Projector`] holds the geometry; [`MlemWork`] one thread's buffers (nothing is allocated per iteration).

#[cfg(target_arch = "x86_64")]
mod avx512;

/// How one angle's rays cross the image.
#[derive(Debug, Clone, Copy)]
struct AngleGeom {
    /// Rays step over columns (`true`) or over rows.
    over_columns: bool,
    /// Path length per line step.
    weight: f32,
    /// Padded position along line `l` of ray `u`: `base + u * slope + l * line_step` (+1 for the padding).
    base: f64,
    slope: f64,
    line_step: f64,
}

/// The Joseph projector for `n x n` images and `angles x cols` sinograms, rotation axis at detector index
/// `center` (geometry as in [`super`]).
pub struct Projector {
    n: usize,
    cols: usize,
    geom: Vec<AngleGeom>,
    /// Per angle and line: the rays crossing it.
    lines: Vec<LineRays>,
}

/// Smallest padded position a ray may take (just inside the leading zero).
const EDGE: f64 = 1e-3;
/// Fractional bits of ray positions. Positions are fixed-point so that every ray steps by exactly the same
/// amount, forward and backward alike (the adjoint stays exact), and steps of 1 to sqrt(2) pixels always
/// advance the pixel index by 1 or 2.
const FRAC_BITS: u32 = 20;
const FRAC_MASK: u32 = (1 << FRAC_BITS) - 1;
const FRAC_SCALE: f32 = 1.0 / (1u32 << FRAC_BITS) as f32;
/// The largest image side: padded positions and one step beyond stay below 2^32 in fixed point.
pub const MAX_N: usize = 4090;

/// One line's rays: the first ray in increasing position order, the direction over rays, the fixed-point
/// position of the first ray and the step.
#[derive(Debug, Clone, Copy)]
struct LineRays {
    lo: u32,
    hi: u32,
    /// Rays run from `hi - 1` down to `lo` (position increases as the ray index decreases).
    reversed: bool,
    start: u32,
    step: u32,
}

impl Projector {
    pub fn new(n: usize, cols: usize, center: f64, theta_rad: &[f64]) -> Self {
        assert!(n > 1 && cols > 0, "empty geometry");
        assert!(
            n <= MAX_N,
            "images up to {MAX_N} pixels a side (fixed-point ray positions)"
        );
        let h = (n as f64 - 1.0) / 2.0;
        let mut geom = Vec::with_capacity(theta_rad.len());
        let mut lines = Vec::with_capacity(theta_rad.len() * n);
        let one = (1u64 << FRAC_BITS) as f64;
        let radius = n as f64 / 2.0;
        for &t in theta_rad {
            let (s, c) = t.sin_cos();
            let g = if s.abs() >= c.abs() {
                // Row position r = h - y, y = (u - center - x cos) / sin, x = j - h.
                AngleGeom {
                    over_columns: true,
                    weight: (1.0 / s.abs()) as f32,
                    base: h + center / s - h * c / s + 1.0,
                    slope: -1.0 / s,
                    line_step: c / s,
                }
            } else {
                // Column position q = x + h, x = (u - center - y sin) / cos, y = h - i.
                AngleGeom {
                    over_columns: false,
                    weight: (1.0 / c.abs()) as f32,
                    base: h - (center + h * s) / c + 1.0,
                    slope: 1.0 / c,
                    line_step: s / c,
                }
            };
            // Rays with padded position in [EDGE, n + 1 - EDGE), and within a pixel of the field of view (the
            // inscribed circle), touch the line.
            for l in 0..n {
                let p0 = g.base + l as f64 * g.line_step;
                let across = l as f64 - h;
                let chord = (radius * radius - across * across).max(0.0).sqrt();
                let (first, last) = if chord > 0.0 {
                    (
                        (h - chord).max(EDGE),
                        (h + chord + 2.0).min(n as f64 + 1.0 - EDGE),
                    )
                } else {
                    (EDGE, EDGE)
                };
                let (a, b) = ((first - p0) / g.slope, (last - p0) / g.slope);
                let (lo, hi) = (a.min(b), a.max(b));
                let lo = lo.ceil().clamp(0.0, cols as f64) as u32;
                let hi = (hi.floor() + 1.0).clamp(lo as f64, cols as f64) as u32;
                let reversed = g.slope < 0.0;
                let first = if reversed { hi.max(1) - 1 } else { lo };
                let start = (p0 + first as f64 * g.slope).clamp(0.0, n as f64 + 1.0);
                let mut r = LineRays {
                    lo,
                    hi,
                    reversed,
                    start: (start * one).round() as u32,
                    step: (g.slope.abs() * one).round() as u32,
                };
                // The fixed-point steps may drift past the line's end over many rays: the rays there touch
                // nothing (both passes need every position below n + 1 pixels).
                let end = ((n as u64 + 1) << FRAC_BITS) - 1;
                while r.hi > r.lo && r.start as u64 + (r.hi - r.lo - 1) as u64 * r.step as u64 > end
                {
                    if reversed {
                        r.lo += 1;
                    } else {
                        r.hi -= 1;
                    }
                }
                lines.push(r);
            }
            geom.push(g);
        }
        Projector {
            n,
            cols,
            geom,
            lines,
        }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// `(angles, cols)`.
    pub fn sinogram_shape(&self) -> (usize, usize) {
        (self.geom.len(), self.cols)
    }

    /// Ray-line steps of one projection (each ray's lines through the field of view, summed): the work of one
    /// pass, forward or backward.
    pub fn ray_steps(&self) -> usize {
        self.lines.iter().map(|r| (r.hi - r.lo) as usize).sum()
    }

    /// Copy `S` interleaved images into the two padded layouts.
    fn load<const S: usize>(
        &self,
        x: &[[f32; S]],
        rows: &mut [[f32; S]],
        columns: &mut [[f32; S]],
    ) {
        let (n, l) = (self.n, self.n + 2);
        for i in 0..n {
            rows[i * l] = [0.0; S];
            rows[i * l + 1..i * l + 1 + n].copy_from_slice(&x[i * n..(i + 1) * n]);
            rows[i * l + n + 1] = [0.0; S];
        }
        for j in 0..n {
            columns[j * l] = [0.0; S];
            columns[j * l + n + 1] = [0.0; S];
        }
        for (i, row) in x.chunks_exact(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                columns[j * l + 1 + i] = v;
            }
        }
    }

    /// `sino = A x` for one image.
    pub fn forward(&self, work: &mut MlemWork<1>, x: &[f32], sino: &mut [f32]) {
        self.forward_interleaved(work, as_lanes(x), as_lanes_mut(sino));
    }

    /// `sino = A x` for `S` images at once, interleaved pixel by pixel (`x[pixel][slice]`,
    /// `sino[ray][slice]`): the rays' positions and weights are computed once for all of them.
    pub fn forward_interleaved<const S: usize>(
        &self,
        work: &mut MlemWork<S>,
        x: &[[f32; S]],
        sino: &mut [[f32; S]],
    ) {
        assert_eq!(x.len(), self.n * self.n, "image is n x n");
        assert_eq!(
            sino.len(),
            self.geom.len() * self.cols,
            "sinogram is angles x cols"
        );
        self.load(x, &mut work.rows, &mut work.columns);
        #[cfg(target_arch = "x86_64")]
        if S == 2 && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: S is 2, and the CPU has the feature the function is compiled for.
            unsafe { self.forward_pair_avx512(work, sino) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { self.forward_avx2(work, sino) };
            return;
        }
        self.forward_loaded(work, sino);
    }

    /// [`Self::forward_loaded`] compiled for AVX2 (gathers make the inner loop vector code).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2<const S: usize>(&self, work: &MlemWork<S>, sino: &mut [[f32; S]]) {
        self.forward_loaded(work, sino);
    }

    /// [`Self::forward_loaded`] for a pair through [`avx512::forward_family`], which sums each row in
    /// increasing position order into `work.ordered`.
    ///
    /// # Safety
    /// `S` must be 2 and the CPU must have AVX-512F.
    #[cfg(target_arch = "x86_64")]
    unsafe fn forward_pair_avx512<const S: usize>(
        &self,
        work: &mut MlemWork<S>,
        sino: &mut [[f32; S]],
    ) {
        let ordered = pairs_mut(&mut work.ordered);
        ordered.fill([0.0; 2]);
        for over_columns in [true, false] {
            let img = if over_columns {
                &work.columns
            } else {
                &work.rows
            };
            // SAFETY: as this function's.
            unsafe { avx512::forward_family(self, pairs(img), ordered, over_columns) };
        }
        self.position_order(ordered, pairs_mut(sino));
        self.weigh(sino);
    }

    /// `to` = `from` with the rows of angles whose ray positions run against the ray index reversed: from the
    /// sinogram's order to increasing position order along each line, and back.
    fn position_order<T: Copy>(&self, from: &[T], to: &mut [T]) {
        let cols = self.cols;
        for ((row, out), g) in from
            .chunks_exact(cols)
            .zip(to.chunks_exact_mut(cols))
            .zip(&self.geom)
        {
            if g.slope < 0.0 {
                for (o, v) in out.iter_mut().zip(row.iter().rev()) {
                    *o = *v;
                }
            } else {
                out.copy_from_slice(row);
            }
        }
    }

    /// Line `line` of angle `a`: its rays, and their range in a position-ordered sinogram
    /// ([`Self::position_order`]).
    #[inline(always)]
    fn line_rays(&self, a: usize, line: usize) -> (LineRays, std::ops::Range<usize>) {
        let r = self.lines[a * self.n + line];
        let (lo, hi, cols) = (r.lo as usize, r.hi as usize, self.cols);
        let off = a * cols + if r.reversed { cols - hi } else { lo };
        (r, off..off + (hi - lo))
    }

    /// Each row of `sino` times its angle's path length per line (the forward pass's last step).
    fn weigh<const S: usize>(&self, sino: &mut [[f32; S]]) {
        for (out, g) in sino.chunks_exact_mut(self.cols).zip(&self.geom) {
            for o in out.iter_mut() {
                for v in o.iter_mut() {
                    *v *= g.weight;
                }
            }
        }
    }

    /// Angles of one family (rays stepping over columns, or over rows) in order.
    fn family(&self, over_columns: bool) -> impl Iterator<Item = (usize, &AngleGeom)> + '_ {
        self.geom
            .iter()
            .enumerate()
            .filter(move |(_, g)| g.over_columns == over_columns)
    }

    /// Tiled over lines: for each block of [`LINE_BLOCK`] lines, every angle of the family in turn, so the
    /// block stays in cache while all the family's angles pass over it (the whole layout does not fit in L2).
    /// Each ray still sums its lines in order and each line its angles in order: tiling changes no result.
    #[inline(always)]
    fn forward_loaded<const S: usize>(&self, work: &MlemWork<S>, sino: &mut [[f32; S]]) {
        let (n, l, cols) = (self.n, self.n + 2, self.cols);
        sino.fill([0.0; S]);
        for over_columns in [true, false] {
            let img = if over_columns {
                &work.columns
            } else {
                &work.rows
            };
            for l0 in (0..n).step_by(LINE_BLOCK) {
                for (a, _) in self.family(over_columns) {
                    let out = &mut sino[a * cols..(a + 1) * cols];
                    for line in l0..(l0 + LINE_BLOCK).min(n) {
                        let r = self.lines[a * n + line];
                        let data = &img[line * l..(line + 1) * l];
                        let span = &mut out[r.lo as usize..r.hi as usize];
                        if r.reversed {
                            forward_line(data, span.iter_mut().rev(), r.start, r.step, n);
                        } else {
                            forward_line(data, span.iter_mut(), r.start, r.step, n);
                        }
                    }
                }
            }
        }
        self.weigh(sino);
    }

    /// `x = A^T sino` (the exact adjoint of [`Self::forward`]).
    pub fn backward(&self, work: &mut MlemWork<1>, sino: &[f32], x: &mut [f32]) {
        self.backward_interleaved(work, as_lanes(sino), as_lanes_mut(x));
    }

    /// `x = A^T sino` for `S` interleaved sinograms at once.
    pub fn backward_interleaved<const S: usize>(
        &self,
        work: &mut MlemWork<S>,
        sino: &[[f32; S]],
        x: &mut [[f32; S]],
    ) {
        assert_eq!(x.len(), self.n * self.n, "image is n x n");
        assert_eq!(
            sino.len(),
            self.geom.len() * self.cols,
            "sinogram is angles x cols"
        );
        let n = self.n;
        #[allow(unused_mut)]
        let mut family: FamilyKernel<S> = backward_dispatch::<S>;
        #[cfg(target_arch = "x86_64")]
        if S == 2 && std::arch::is_x86_feature_detected!("avx512f") {
            family = |p, ordered, img, over_columns| {
                // SAFETY: S is 2 here, and the CPU has AVX-512F.
                unsafe { avx512::backward_family(p, pairs(ordered), pairs_mut(img), over_columns) }
            };
        }
        backward_layouts(self, work, sino, family);
        let l = n + 2;
        for i in 0..n {
            x[i * n..(i + 1) * n].copy_from_slice(&work.rows[i * l + 1..i * l + 1 + n]);
        }
        for j in 0..n {
            let col = &work.columns[j * l + 1..j * l + 1 + n];
            for (i, v) in col.iter().enumerate() {
                for (d, s) in x[i * n + j].iter_mut().zip(v) {
                    *d += *s;
                }
            }
        }
    }

    /// Buffers for one thread, for `S` slices at a time.
    pub fn work<const S: usize>(&self) -> MlemWork<S> {
        let (n, l) = (self.n, self.n + 2);
        let (a, c) = self.sinogram_shape();
        MlemWork {
            rows: vec![[0.0; S]; n * l],
            columns: vec![[0.0; S]; n * l],
            sino: vec![[0.0; S]; a * c],
            ordered: vec![[0.0; S]; a * c],
            image: vec![[0.0; S]; n * n],
            y: vec![[0.0; S]; a * c],
            x: vec![[0.0; S]; n * n],
        }
    }
}

/// Lines per tile of the projector's loops: 32 lines of a 640-pixel pair's layout are 164 kB, which stay in L2
/// beside the sinogram while every angle of the family passes over them.
const LINE_BLOCK: usize = 32;

/// One family's lines of `A^T sino`, from the position-ordered sinogram into its padded layout.
type FamilyKernel<const S: usize> = fn(&Projector, &[[f32; S]], &mut [[f32; S]], bool);

/// `A^T sino` into the two padded layouts with `family` doing each family's lines. Each line takes its rays in
/// increasing position order, from `work.ordered` ([`Projector::position_order`]).
fn backward_layouts<const S: usize>(
    p: &Projector,
    work: &mut MlemWork<S>,
    sino: &[[f32; S]],
    family: FamilyKernel<S>,
) {
    p.position_order(sino, &mut work.ordered);
    work.rows.fill([0.0; S]);
    work.columns.fill([0.0; S]);
    family(p, &work.ordered, &mut work.columns, true);
    family(p, &work.ordered, &mut work.rows, false);
}

// The backward pass compiled for the widest vector unit the CPU has (`crate::simd`, bit-identical). The
// sinogram and the layout come in as separate slices: the compiler then knows they do not overlap, which the
// gathers of the vector loop need.
crate::multiversion!(backward_dispatch, backward_kernel,
    (p: &Projector, ordered: &[[f32; D]], img: &mut [[f32; D]], over_columns: bool) -> ());

/// One family's lines of `A^T sino` (see [`backward_layouts`]), tiled over lines as
/// [`Projector::forward_loaded`].
#[inline(always)]
fn backward_kernel<const S: usize>(
    p: &Projector,
    ordered: &[[f32; S]],
    img: &mut [[f32; S]],
    over_columns: bool,
) {
    let (n, l) = (p.n, p.n + 2);
    for l0 in (0..n).step_by(LINE_BLOCK) {
        for (a, g) in p.family(over_columns) {
            for line in l0..(l0 + LINE_BLOCK).min(n) {
                let (r, rays) = p.line_rays(a, line);
                let data = &mut img[line * l..(line + 1) * l];
                backward_line(data, &ordered[rays], r.start, r.step, g.weight, n);
            }
        }
    }
}

/// `[f32; S]` groups as pairs (the caller makes sure `S` is 2).
#[cfg(target_arch = "x86_64")]
fn pairs<const S: usize>(v: &[[f32; S]]) -> &[[f32; 2]] {
    assert_eq!(S, 2, "pairs of slices");
    // SAFETY: with S = 2 the types are the same.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len()) }
}

#[cfg(target_arch = "x86_64")]
fn pairs_mut<const S: usize>(v: &mut [[f32; S]]) -> &mut [[f32; 2]] {
    assert_eq!(S, 2, "pairs of slices");
    // SAFETY: as above; the borrow is carried over.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) }
}

/// A slice of values as one-lane groups (the `S = 1` case of the interleaved functions).
fn as_lanes(v: &[f32]) -> &[[f32; 1]] {
    // SAFETY: [f32; 1] has the size, alignment and validity of f32.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len()) }
}

fn as_lanes_mut(v: &mut [f32]) -> &mut [[f32; 1]] {
    // SAFETY: as above; the borrow is carried over.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) }
}

/// Add the rays' interpolated values along one padded line into `out` (in increasing position order).
#[inline(always)]
fn forward_line<'a, const S: usize>(
    data: &[[f32; S]],
    out: impl Iterator<Item = &'a mut [f32; S]>,
    start: u32,
    step: u32,
    n: usize,
) {
    assert!(data.len() >= n + 2, "padded line");
    let mut pos = start;
    for o in out {
        let i = ((pos >> FRAC_BITS) as usize).min(n);
        let f = (pos & FRAC_MASK) as f32 * FRAC_SCALE;
        // SAFETY: i <= n and data holds n + 2 values.
        let (a, b) = unsafe { (*data.get_unchecked(i), *data.get_unchecked(i + 1)) };
        for s in 0..S {
            o[s] += a[s] + f * (b[s] - a[s]);
        }
        pos = pos.wrapping_add(step);
    }
}

/// The adjoint of [`forward_line`] for one padded line: adds each ray's shares into `data`. Consecutive rays
/// land 1 or 2 pixels apart, so the share for the pixel after a ray's is carried in a register and every pixel
/// is read and written once per line (no read-modify-write chains between rays).
#[inline(always)]
fn backward_line<const S: usize>(
    data: &mut [[f32; S]],
    src: &[[f32; S]],
    start: u32,
    step: u32,
    weight: f32,
    n: usize,
) {
    assert!(data.len() >= n + 2, "padded line");
    let mut pos = start;
    let mut next = ((pos >> FRAC_BITS) as usize).min(n);
    let mut carry = [0.0f32; S];
    for v in src {
        let i = ((pos >> FRAC_BITS) as usize).min(n);
        let f = (pos & FRAC_MASK) as f32 * FRAC_SCALE;
        let joined = i == next;
        // SAFETY: next <= i <= n and data holds n + 2 values.
        let (dn, di) = unsafe { (*data.get_unchecked(next), *data.get_unchecked(i)) };
        let (mut new_next, mut new_i) = (dn, di);
        for s in 0..S {
            let w = v[s] * weight;
            let (own, skipped) = if joined {
                (carry[s], 0.0)
            } else {
                (0.0, carry[s])
            };
            new_next[s] += skipped;
            new_i[s] = if joined { dn[s] } else { di[s] } + w - f * w + own;
            carry[s] = f * w;
        }
        unsafe {
            *data.get_unchecked_mut(next) = new_next;
            *data.get_unchecked_mut(i) = new_i;
        }
        next = i + 1;
        pos = pos.wrapping_add(step);
    }
    let last = &mut data[next.min(n + 1)];
    for s in 0..S {
        last[s] += carry[s];
    }
}

/// One thread's buffers for `S` slices at a time.
pub struct MlemWork<const S: usize> {
    rows: Vec<[f32; S]>,
    columns: Vec<[f32; S]>,
    sino: Vec<[f32; S]>,
    /// The backward pass's sinogram with every row in increasing position order.
    ordered: Vec<[f32; S]>,
    image: Vec<[f32; S]>,
    /// Interleaved data and image of [`Mlem::reconstruct_pair`].
    y: Vec<[f32; S]>,
    x: Vec<[f32; S]>,
}

/// Starting image of ML-EM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MlemInit {
    /// The constant whose projections have the data's total (a good, data-free guess).
    Mean,
    /// This constant (must be positive).
    Constant(f32),
}

/// ML-EM for one geometry: the projector and its sensitivity image `A^T 1`.
pub struct Mlem {
    projector: Projector,
    sensitivity_inv: Vec<f32>,
    sensitivity_total: f64,
}

impl Mlem {
    pub fn new(n: usize, cols: usize, center: f64, theta_rad: &[f64]) -> Self {
        let projector = Projector::new(n, cols, center, theta_rad);
        let mut work = projector.work::<1>();
        let (a, c) = projector.sinogram_shape();
        let ones = vec![1.0f32; a * c];
        let mut sens = vec![0.0f32; n * n];
        projector.backward(&mut work, &ones, &mut sens);
        let sensitivity_total = sens.iter().map(|&v| v as f64).sum();
        let sensitivity_inv = sens
            .iter()
            .map(|&v| if v > 1e-6 { 1.0 / v } else { 0.0 })
            .collect();
        Mlem {
            projector,
            sensitivity_inv,
            sensitivity_total,
        }
    }

    pub fn projector(&self) -> &Projector {
        &self.projector
    }

    fn start_value(&self, init: MlemInit, y: impl Iterator<Item = f32>) -> f32 {
        match init {
            MlemInit::Mean => {
                let total: f64 = y.map(|v| v.max(0.0) as f64).sum();
                if self.sensitivity_total > 0.0 {
                    (total / self.sensitivity_total) as f32
                } else {
                    0.0
                }
            }
            MlemInit::Constant(c) => c,
        }
    }

    /// Set `x` to the starting image for data `y`.
    pub fn init(&self, init: MlemInit, y: &[f32], x: &mut [f32]) {
        self.init_interleaved(init, as_lanes(y), as_lanes_mut(x));
    }

    fn init_interleaved<const S: usize>(&self, init: MlemInit, y: &[[f32; S]], x: &mut [[f32; S]]) {
        let v: [f32; S] = std::array::from_fn(|s| self.start_value(init, y.iter().map(|p| p[s])));
        for (xi, &inv) in x.iter_mut().zip(&self.sensitivity_inv) {
            *xi = if inv > 0.0 { v } else { [0.0; S] };
        }
    }

    /// One ML-EM iteration on `x` for data `y` (negative data counts as zero). Returns the Poisson
    /// log-likelihood of `x` before the update (up to a constant), `sum y ln(Ax) - Ax`.
    pub fn iterate(&self, work: &mut MlemWork<1>, y: &[f32], x: &mut [f32]) -> f64 {
        self.iterate_interleaved(work, as_lanes(y), as_lanes_mut(x))[0]
    }

    /// [`Self::iterate`] for `S` interleaved slices; one log-likelihood per slice.
    pub fn iterate_interleaved<const S: usize>(
        &self,
        work: &mut MlemWork<S>,
        y: &[[f32; S]],
        x: &mut [[f32; S]],
    ) -> [f64; S] {
        let mut sino = std::mem::take(&mut work.sino);
        let mut image = std::mem::take(&mut work.image);
        self.projector.forward_interleaved(work, x, &mut sino);
        let mut ll = [0.0f64; S];
        for (p, yv) in sino.iter_mut().zip(y) {
            for s in 0..S {
                let yv = yv[s].max(0.0);
                let ax = p[s];
                if ax > 0.0 {
                    ll[s] += (yv * ax.ln() - ax) as f64;
                    p[s] = yv / ax;
                } else {
                    p[s] = 0.0;
                }
            }
        }
        self.projector.backward_interleaved(work, &sino, &mut image);
        for ((xi, b), &inv) in x.iter_mut().zip(&image).zip(&self.sensitivity_inv) {
            for s in 0..S {
                xi[s] *= b[s] * inv;
            }
        }
        work.sino = sino;
        work.image = image;
        ll
    }

    /// Poisson log-likelihood of `x` for `y` (up to a constant).
    pub fn log_likelihood(&self, work: &mut MlemWork<1>, y: &[f32], x: &[f32]) -> f64 {
        let mut sino = std::mem::take(&mut work.sino);
        self.projector
            .forward_interleaved(work, as_lanes(x), &mut sino);
        let ll = sino
            .iter()
            .zip(y)
            .filter(|(ax, _)| ax[0] > 0.0)
            .map(|(ax, &yv)| (yv.max(0.0) * ax[0].ln() - ax[0]) as f64)
            .sum();
        work.sino = sino;
        ll
    }

    /// `iterations` of ML-EM from `init`, into `x`.
    pub fn reconstruct(
        &self,
        work: &mut MlemWork<1>,
        y: &[f32],
        init: MlemInit,
        iterations: usize,
        x: &mut [f32],
    ) {
        self.init(init, y, x);
        for _ in 0..iterations {
            self.iterate(work, y, x);
        }
    }

    /// Two slices at once (the same result as one at a time, for less than twice the time of one).
    #[allow(clippy::too_many_arguments)]
    pub fn reconstruct_pair(
        &self,
        work: &mut MlemWork<2>,
        (ya, yb): (&[f32], &[f32]),
        init: MlemInit,
        iterations: usize,
        (xa, xb): (&mut [f32], &mut [f32]),
    ) {
        let mut y = std::mem::take(&mut work.y);
        let mut x = std::mem::take(&mut work.x);
        for ((p, &a), &b) in y.iter_mut().zip(ya).zip(yb) {
            *p = [a, b];
        }
        self.init_interleaved(init, &y, &mut x);
        for _ in 0..iterations {
            self.iterate_interleaved(work, &y, &mut x);
        }
        for ((p, a), b) in x.iter().zip(xa.iter_mut()).zip(xb.iter_mut()) {
            (*a, *b) = (p[0], p[1]);
        }
        work.y = y;
        work.x = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32) / (1u64 << 24) as f32
    }

    #[test]
    fn backward_is_the_exact_adjoint() {
        for (n, cols, center, angles) in
            [(64, 64, 32.0, 37), (50, 71, 36.3, 20), (33, 33, 15.7, 181)]
        {
            let theta: Vec<f64> = (0..angles)
                .map(|i| std::f64::consts::PI * i as f64 / (angles - 1) as f64)
                .collect();
            let p = Projector::new(n, cols, center, &theta);
            let mut w = p.work();
            let mut seed = 7;
            let x: Vec<f32> = (0..n * n).map(|_| lcg(&mut seed)).collect();
            let y: Vec<f32> = (0..angles * cols).map(|_| lcg(&mut seed)).collect();
            let mut ax = vec![0.0; angles * cols];
            let mut aty = vec![0.0; n * n];
            p.forward(&mut w, &x, &mut ax);
            p.backward(&mut w, &y, &mut aty);
            let lhs: f64 = ax.iter().zip(&y).map(|(a, b)| *a as f64 * *b as f64).sum();
            let rhs: f64 = x.iter().zip(&aty).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!(
                (lhs - rhs).abs() <= 1e-5 * lhs.abs(),
                "{n} {cols}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn a_uniform_disc_projects_to_its_chords() {
        // Pixels inside a disc of radius 20 px: each ray's sum is close to the chord length.
        let n = 64;
        let theta: Vec<f64> = (0..12)
            .map(|i| std::f64::consts::PI * i as f64 / 12.0)
            .collect();
        let p = Projector::new(n, n, n as f64 / 2.0 - 0.5, &theta);
        let h = (n as f64 - 1.0) / 2.0;
        let x: Vec<f32> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                let (x, y) = (j as f64 - h, h - i as f64);
                if x * x + y * y <= 400.0 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mut s = vec![0.0; 12 * n];
        p.forward(&mut p.work(), &x, &mut s);
        for a in 0..12 {
            let mid = s[a * n + n / 2];
            let chord = 2.0 * (400.0f64 - 0.25).sqrt();
            assert!(
                (mid as f64 - chord).abs() < 1.5,
                "angle {a}: {mid} vs {chord}"
            );
        }
    }

    #[test]
    fn a_pair_reconstructs_as_two_singles() {
        let (n, angles) = (40, 30);
        let theta: Vec<f64> = (0..angles)
            .map(|i| std::f64::consts::PI * i as f64 / angles as f64)
            .collect();
        let m = Mlem::new(n, n, 19.7, &theta);
        let mut seed = 3;
        let ya: Vec<f32> = (0..angles * n).map(|_| 5.0 * lcg(&mut seed)).collect();
        let yb: Vec<f32> = (0..angles * n).map(|_| 9.0 * lcg(&mut seed)).collect();
        let (mut a, mut b) = (vec![0.0; n * n], vec![0.0; n * n]);
        m.reconstruct_pair(
            &mut m.projector().work(),
            (&ya, &yb),
            MlemInit::Mean,
            4,
            (&mut a, &mut b),
        );
        let mut one = m.projector().work();
        for (y, got) in [(&ya, &a), (&yb, &b)] {
            let mut x = vec![0.0; n * n];
            m.reconstruct(&mut one, y, MlemInit::Mean, 4, &mut x);
            for (p, q) in x.iter().zip(got.iter()) {
                assert!((p - q).abs() <= 1e-5 * p.abs().max(1.0), "{p} vs {q}");
            }
        }
    }

    #[test]
    fn empty_rays_and_zero_data_give_no_nan() {
        let theta = [0.0, 1.0, 2.0];
        let m = Mlem::new(16, 16, 8.0, &theta);
        let mut w = m.projector().work();
        let y = vec![0.0f32; 3 * 16];
        let mut x = vec![0.0f32; 256];
        m.reconstruct(&mut w, &y, MlemInit::Mean, 3, &mut x);
        assert!(x.iter().all(|v| v.is_finite() && *v == 0.0));
        m.reconstruct(&mut w, &y, MlemInit::Constant(1.0), 3, &mut x);
        assert!(x.iter().all(|v| v.is_finite()));
    }

    fn layout_bits<const S: usize>(w: &MlemWork<S>) -> Vec<u32> {
        w.rows
            .iter()
            .chain(&w.columns)
            .flatten()
            .map(|v| v.to_bits())
            .collect()
    }

    #[test]
    fn every_ray_position_stays_inside_its_padded_line() {
        // Both passes rely on it (the pair passes' arithmetic too): at the largest side, and with many rays
        // per line, where the fixed-point steps drift furthest.
        for (n, cols) in [(MAX_N, MAX_N), (64, 4096), (300, 300)] {
            let theta: Vec<f64> = (0..24).map(|i| 0.1309 * i as f64 + 1e-3).collect();
            let p = Projector::new(n, cols, cols as f64 / 2.0 - 0.3, &theta);
            for r in &p.lines {
                assert!(r.lo <= r.hi && r.hi as usize <= cols);
                if r.hi > r.lo {
                    let last = r.start as u64 + (r.hi - r.lo - 1) as u64 * r.step as u64;
                    assert!(last < ((n as u64 + 1) << FRAC_BITS), "{n}: {r:?}");
                    assert!(last + 3 * r.step as u64 <= u32::MAX as u64, "{n}: {r:?}");
                }
            }
        }
    }

    #[test]
    fn the_pair_passes_give_the_portable_bits() {
        // Where the CPU has AVX-512 the pair passes go through `avx512`; they must give the portable passes'
        // bits. Square and wide detectors, off-centre axes, angles on and off the diagonals, lines of one
        // ray, and values of both signs and far apart in size.
        for (n, cols, center, angles, span) in [
            (50, 71, 36.3, 37, 1.0),
            (33, 33, 15.7, 181, 1.0),
            (64, 64, 32.0, 45, 1.0),
            (97, 120, 40.2, 60, 0.8),
            (8, 8, 4.0, 7, 1.0),
            (130, 40, 20.5, 16, 1.0),
        ] {
            let theta: Vec<f64> = (0..angles)
                .map(|i| span * std::f64::consts::PI * i as f64 / angles as f64 + 0.01)
                .collect();
            let p = Projector::new(n, cols, center, &theta);
            let mut seed = n as u64;
            let y: Vec<[f32; 2]> = (0..angles * cols)
                .map(|_| [lcg(&mut seed) - 0.3, 1e3 * lcg(&mut seed)])
                .collect();
            let x: Vec<[f32; 2]> = (0..n * n)
                .map(|_| [lcg(&mut seed), 1e-3 * lcg(&mut seed) - 2e-4])
                .collect();
            let (mut portable, mut w) = (p.work::<2>(), p.work::<2>());
            backward_layouts(&p, &mut portable, &y, backward_kernel::<2>);
            let mut image = vec![[0.0f32; 2]; n * n];
            p.backward_interleaved(&mut w, &y, &mut image);
            assert_eq!(
                layout_bits(&portable),
                layout_bits(&w),
                "{n} x {cols}: backward"
            );
            let mut s1 = vec![[0.0f32; 2]; angles * cols];
            p.load(&x, &mut portable.rows, &mut portable.columns);
            p.forward_loaded(&portable, &mut s1);
            let mut s2 = vec![[0.0f32; 2]; angles * cols];
            p.forward_interleaved(&mut w, &x, &mut s2);
            let bits = |v: &[[f32; 2]]| v.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&s1), bits(&s2), "{n} x {cols}: forward");
        }
    }

    #[test]
    fn the_vector_paths_give_the_baseline_bits() {
        let (n, cols, angles) = (50, 71, 37);
        let theta: Vec<f64> = (0..angles)
            .map(|i| std::f64::consts::PI * i as f64 / angles as f64)
            .collect();
        let p = Projector::new(n, cols, 36.3, &theta);
        let mut seed = 11;
        let y: Vec<[f32; 2]> = (0..angles * cols)
            .map(|_| [lcg(&mut seed), lcg(&mut seed)])
            .collect();
        let (mut w1, mut w2) = (p.work::<2>(), p.work::<2>());
        backward_layouts(&p, &mut w1, &y, backward_kernel::<2>);
        backward_layouts(&p, &mut w2, &y, backward_dispatch::<2>);
        assert_eq!(layout_bits(&w1), layout_bits(&w2));
        // Forward: dispatched (AVX2 where the CPU has it) against the baseline build.
        let mut s2 = vec![[0.0f32; 2]; angles * cols];
        p.forward_interleaved(&mut w2, &vec![[0.5, 0.25]; n * n], &mut s2);
        let mut w3 = p.work::<2>();
        p.load(&vec![[0.5, 0.25]; n * n], &mut w3.rows, &mut w3.columns);
        let mut s3 = vec![[0.0f32; 2]; angles * cols];
        p.forward_loaded(&w3, &mut s3);
        assert!(s2
            .iter()
            .flatten()
            .zip(s3.iter().flatten())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
