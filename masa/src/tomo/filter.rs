//! Reconstruction filters: the ramp (as the DFT of its band-limited spatial kernel, Kak and Slaney's h[n], which
//! keeps the DC term a sampled |nu| would lose) times a window.

/// A filter's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FilterKind {
    /// No filter at all (plain back projection).
    None,
    Ramp,
    SheppLogan,
    Hann,
    Hamming,
    Cosine,
    /// `1 / (1 + (nu / cutoff)^(2 order))`, nu in cycles per pixel (Nyquist 0.5).
    Butterworth {
        cutoff: f64,
        order: u32,
    },
}

impl FilterKind {
    /// Parse `none`, `ramp`, `shepp-logan`, `hann`, `hamming`, `cosine`, `butterworth` (cutoff 0.5, order 2).
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "none" => FilterKind::None,
            "ramp" => FilterKind::Ramp,
            "shepp-logan" | "shepp" => FilterKind::SheppLogan,
            "hann" => FilterKind::Hann,
            "hamming" => FilterKind::Hamming,
            "cosine" => FilterKind::Cosine,
            "butterworth" => FilterKind::Butterworth { cutoff: 0.5, order: 2 },
            other => {
                return Err(format!(
                    "filter `{other}` is unknown (none, ramp, shepp-logan, hann, hamming, cosine, butterworth)"
                ))
            }
        })
    }

    /// The window at `nu` cycles per pixel (0 to 0.5).
    pub fn window(self, nu: f64) -> f64 {
        use std::f64::consts::PI;
        match self {
            FilterKind::None | FilterKind::Ramp => 1.0,
            FilterKind::SheppLogan => {
                if nu == 0.0 {
                    1.0
                } else {
                    (PI * nu).sin() / (PI * nu)
                }
            }
            FilterKind::Hann => 0.5 + 0.5 * (2.0 * PI * nu).cos(),
            FilterKind::Hamming => 0.54 + 0.46 * (2.0 * PI * nu).cos(),
            FilterKind::Cosine => (PI * nu).cos(),
            FilterKind::Butterworth { cutoff, order } => {
                1.0 / (1.0 + (nu / cutoff).powi(2 * order as i32))
            }
        }
    }
}

/// Frequency response for an FFT of length `len` (bin k is nu = min(k, len - k) / len cycles per pixel).
pub fn response(kind: FilterKind, len: usize) -> Vec<f64> {
    use std::f64::consts::PI;
    if kind == FilterKind::None {
        return vec![1.0; len];
    }
    // DFT of h[0] = 1/4, h[n odd] = -1 / (pi n)^2, h[n even] = 0, n in (-len/2, len/2].
    let half = len / 2;
    (0..len)
        .map(|k| {
            let mut h = 0.25;
            let mut n = 1;
            while n <= half {
                h += 2.0
                    * (-1.0 / (PI * n as f64).powi(2))
                    * (2.0 * PI * (k * n) as f64 / len as f64).cos();
                n += 2;
            }
            let nu = k.min(len - k) as f64 / len as f64;
            h * kind.window(nu)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discrete_ramp_approximates_abs_nu_and_keeps_dc() {
        let r = response(FilterKind::Ramp, 1024);
        assert!(r[0] > 0.0 && r[0] < 0.01, "small positive DC: {}", r[0]);
        for k in [64usize, 256, 400] {
            let nu = k as f64 / 1024.0;
            assert!((r[k] - nu).abs() < 0.01, "k {k}: {} vs {nu}", r[k]);
            assert!((r[k] - r[1024 - k]).abs() < 1e-12, "symmetric");
        }
        let s = response(FilterKind::SheppLogan, 1024);
        assert!(s[512] < r[512] && s[512] > 0.0);
        assert_eq!(response(FilterKind::None, 8), vec![1.0; 8]);
        assert!(FilterKind::Hann.window(0.5).abs() < 1e-12);
        assert!(FilterKind::parse("gauss").is_err());
    }
}
