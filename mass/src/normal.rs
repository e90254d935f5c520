//! A fast standard-normal sampler: Marsaglia and Tsang's ziggurat (2000) with 128 layers. Each 64-bit draw
//! feeds two samples: in each 32-bit half, 7 bits pick the layer and the other 25 bits are the signed abscissa,
//! so layer and value never share bits (resolution about 1e-7 of the layer width, ample for benchmark data). About 99% of samples take the fast path (a table lookup and one multiply); the
//! rest go through the exact wedge or tail rejection steps. Bits come from [`WyRand`] (wyhash's 64-bit
//! generator, the one `fastrand` uses): statistically sound for simulation, not for cryptography, and about twice
//! as fast as xoshiro256++ here, which matters at 15,000 samples a message. Numerics only, no I/O.

/// wyrand: a 64-bit counter mixed by a 128-bit multiply.
#[derive(Debug, Clone)]
pub struct WyRand(u64);

impl WyRand {
    pub fn new(seed: u64) -> Self {
        WyRand(seed)
    }

    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        (t >> 64) as u64 ^ t as u64
    }

    /// A uniform f64 in (0, 1).
    #[inline]
    pub fn unit_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }
}

const LAYERS: usize = 128;
/// Right edge of the base layer (the tail starts here).
const R: f64 = 3.442_619_855_899;
/// Area of each layer.
const V: f64 = 9.912_563_035_262_17e-3;
/// Scale of the signed 25-bit abscissa.
const M: f64 = (1u64 << 24) as f64;

/// Precomputed ziggurat tables.
#[derive(Debug, Clone)]
pub struct Ziggurat {
    /// Fast-path thresholds on |abscissa|.
    k: [u32; LAYERS],
    /// Abscissa scale per layer.
    w: [f64; LAYERS],
    /// exp(-x^2/2) at each layer edge.
    f: [f64; LAYERS],
}

impl Default for Ziggurat {
    fn default() -> Self {
        Self::new()
    }
}

impl Ziggurat {
    pub fn new() -> Self {
        let mut k = [0u32; LAYERS];
        let mut w = [0f64; LAYERS];
        let mut f = [0f64; LAYERS];
        let mut dn = R;
        let mut tn = dn;
        let q = V / (-0.5 * dn * dn).exp();
        k[0] = ((dn / q) * M) as u32;
        k[1] = 0;
        w[0] = q / M;
        w[LAYERS - 1] = dn / M;
        f[0] = 1.0;
        f[LAYERS - 1] = (-0.5 * dn * dn).exp();
        for i in (1..LAYERS - 1).rev() {
            dn = (-2.0 * (V / dn + (-0.5 * dn * dn).exp()).ln()).sqrt();
            k[i + 1] = ((dn / tn) * M) as u32;
            tn = dn;
            f[i] = (-0.5 * dn * dn).exp();
            w[i] = dn / M;
        }
        Ziggurat { k, w, f }
    }

    /// Two independent N(0, 1) samples from one 64-bit draw (more only on the rare slow path).
    #[inline(always)]
    pub fn sample_pair(&self, rng: &mut WyRand) -> (f64, f64) {
        let u = rng.next_u64();
        (self.half(rng, u as u32), self.half(rng, (u >> 32) as u32))
    }

    #[inline(always)]
    fn half(&self, rng: &mut WyRand, bits: u32) -> f64 {
        let iz = (bits & (LAYERS as u32 - 1)) as usize;
        let hz = (bits as i32) >> 7;
        if hz.unsigned_abs() < self.k[iz] {
            return hz as f64 * self.w[iz];
        }
        self.slow(rng, hz, iz)
    }

    #[cold]
    fn slow(&self, rng: &mut WyRand, mut hz: i32, mut iz: usize) -> f64 {
        loop {
            let x = hz as f64 * self.w[iz];
            if iz == 0 {
                // The tail beyond R (Marsaglia 1964).
                loop {
                    let x = -rng.unit_open().ln() / R;
                    let y = -rng.unit_open().ln();
                    if y + y >= x * x {
                        return if hz > 0 { R + x } else { -R - x };
                    }
                }
            }
            if self.f[iz] + rng.unit_open() * (self.f[iz - 1] - self.f[iz]) < (-0.5 * x * x).exp() {
                return x;
            }
            let bits = rng.next_u64() as u32;
            iz = (bits & (LAYERS as u32 - 1)) as usize;
            hz = (bits as i32) >> 7;
            if hz.unsigned_abs() < self.k[iz] {
                return hz as f64 * self.w[iz];
            }
        }
    }
}

/// N(0, 1) samples one at a time, using both halves of each draw.
#[derive(Debug, Clone)]
pub struct NormalStream {
    zig: Ziggurat,
    rng: WyRand,
    spare: Option<f64>,
}

impl NormalStream {
    pub fn new(seed: u64) -> Self {
        NormalStream {
            zig: Ziggurat::new(),
            rng: WyRand::new(seed),
            spare: None,
        }
    }

    /// The next sample.
    #[inline(always)]
    pub fn sample(&mut self) -> f64 {
        match self.spare.take() {
            Some(z) => z,
            None => {
                let (a, b) = self.zig.sample_pair(&mut self.rng);
                self.spare = Some(b);
                a
            }
        }
    }

    /// Two samples at once (the fast path for callers that use them in pairs).
    #[inline(always)]
    pub fn next_pair(&mut self) -> (f64, f64) {
        self.zig.sample_pair(&mut self.rng)
    }

    /// Raw 64 random bits from the same generator.
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_tail_probabilities_match_the_standard_normal() {
        let mut z = NormalStream::new(7);
        let n = 2_000_000;
        let (mut s1, mut s2, mut s3, mut s4) = (0.0, 0.0, 0.0, 0.0);
        let mut beyond = [0u64; 4];
        for _ in 0..n {
            let x = z.sample();
            s1 += x;
            s2 += x * x;
            s3 += x * x * x;
            s4 += x * x * x * x;
            for (t, b) in beyond.iter_mut().enumerate() {
                if x.abs() > (t + 1) as f64 {
                    *b += 1;
                }
            }
        }
        let nf = n as f64;
        let (mean, var) = (s1 / nf, s2 / nf - (s1 / nf).powi(2));
        assert!(mean.abs() < 0.003, "mean {mean}");
        assert!((var - 1.0).abs() < 0.004, "variance {var}");
        assert!((s3 / nf).abs() < 0.01, "skew {}", s3 / nf);
        assert!((s4 / nf - 3.0).abs() < 0.03, "kurtosis {}", s4 / nf);
        // P(|Z| > t) for t = 1..4: 0.31731, 0.04550, 0.0026998, 0.00006334.
        let expect = [0.317_310_5, 0.045_500_26, 0.002_699_796, 0.000_063_342_5];
        for (t, (&b, &p)) in beyond.iter().zip(&expect).enumerate() {
            let got = b as f64 / nf;
            let sd = (p * (1.0 - p) / nf).sqrt();
            assert!(
                (got - p).abs() < 5.0 * sd,
                "P(|Z| > {}) = {got}, expected {p}",
                t + 1
            );
        }
    }
}
