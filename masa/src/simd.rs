//! Run-time choice of the vector unit for the numeric kernels (KMeans, GridRec's gridding, ML-EM's projector).
//!
//! The build targets baseline x86-64 so one binary runs on every cluster node; [`multiversion!`] compiles a
//! kernel (an `#[inline(always)]` function) again for AVX-512 and for AVX2 and picks the widest the CPU has on
//! each call (the feature checks are cached atomics). The variants enable no fused multiply-add (and Rust never
//! contracts `a * b + c` on its own), so every variant rounds exactly as the baseline: results are bit-for-bit
//! the same on every machine.

/// `multiversion!(name, kernel, (arg: Type, ...) -> Ret)` defines `fn name<const D: usize>(args) -> Ret` that
/// calls `kernel::<D>(args)` compiled for AVX-512F, AVX2 or baseline, whichever the CPU has first. Kernels
/// without a const parameter take a dummy one (`D = 0`).
#[macro_export]
macro_rules! multiversion {
    ($vis:vis $name:ident, $kernel:ident, ($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty) => {
        #[inline]
        $vis fn $name<const D: usize>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512<const D: usize>($($arg: $ty),*) -> $ret {
                    $kernel::<D>($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2<const D: usize>($($arg: $ty),*) -> $ret {
                    $kernel::<D>($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the feature the function is compiled for.
                    return unsafe { avx512::<D>($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2::<D>($($arg),*) };
                }
            }
            $kernel::<D>($($arg),*)
        }
    };
}
