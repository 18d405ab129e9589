//! The agents' network engine: forward and backward passes of the networks PPO, DQN and SAC
//! train, the element-wise functions they need and the optimiser's arithmetic, owned by the
//! project and **exact on every CPU**.
//!
//! A result of the engine is a function of its inputs alone: the same bits with the portable
//! code, with AVX2 and with AVX-512, on any x86-64 and on aarch64. Three rules make it so:
//!
//! 1. **Every reduction is one chain in a fixed order.** An element of a matrix product is
//!    `acc ← fma(a_k, b_k, acc)` for `k = 0, 1, …` in order, from a start fixed by the caller
//!    (zero, a bias, or the value already there); a sum of many values runs in a fixed number of
//!    lanes ([`LANES`]) combined in a fixed order. Vector instructions are used only *across*
//!    independent outputs, so the vector width changes how many chains run at once, never the
//!    order within one.
//! 2. **Only correctly rounded operations**: addition, multiplication, division, square root and
//!    fused multiply-add are exact in IEEE 754 whatever instruction computes them. Rust never
//!    contracts `a * b + c` into an FMA on its own, so an FMA appears exactly where the code says
//!    `mul_add`. Transcendental functions are the project's own ([`math`]) or the pure-Rust
//!    `libm` crate, never the platform's dispatching C library.
//! 3. **One source for every instruction set.** Each kernel is written once, as plain Rust over
//!    fixed-size arrays, and compiled several times ([`dispatch!`]): with AVX-512, with AVX2 and
//!    FMA, and portable. Which one runs is chosen once per process from the CPU, or forced with
//!    `HEADSTART_ENGINE=portable` (or per thread with [`force`], for the tests that compare them).
//!
//! What stays outside: libtorch holds the parameters (named tensors, the checkpoint and transfer
//! contract), draws initial weights, and differentiates the rare paths that are not written by
//! hand (PPO's and SAC's gSDE); those paths, and MuJoCo's physics, may differ between CPUs.
//!
//! - [`gemm`]: the matrix products (a micro-kernel of 4 rows by 16 columns of accumulators).
//! - [`math`]: `exp`, `tanh` and friends in `f32`, element-wise kernels, fixed-lane sums.
//! - [`net`]: a network as a table of layers over a flat parameter vector; its forward pass, its
//!   backward pass and the gradients it writes.
//! - [`front`]: a dictionary observation's parts, each through its own encoder, before a table.
//! - [`conv`]: convolutions as matrix products over patches of `(row, column, channel)` images,
//!   and the flattening into PyTorch's order.

pub(crate) mod conv;
pub(crate) mod front;
pub(crate) mod gemm;
pub(crate) mod graph;
pub(crate) mod math;
pub(crate) mod net;

pub(crate) use net::{Net, Pass};

use std::cell::Cell;
use std::sync::OnceLock;

/// The instruction sets a kernel is compiled for. Every variant computes the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust for the target's baseline (on x86-64, SSE2: `mul_add` is the C library's
    /// correctly rounded `fmaf`).
    Portable,
    /// AVX2 with FMA (x86-64).
    Avx2,
    /// AVX-512 (x86-64).
    Avx512,
}

/// The variable that forces the portable kernels: `HEADSTART_ENGINE=portable`.
pub const ENGINE_VAR: &str = "HEADSTART_ENGINE";

thread_local! {
    static FORCED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// The instruction set the kernels run with on this thread.
pub fn isa() -> Isa {
    FORCED.with(Cell::get).unwrap_or_else(detected)
}

/// The best instruction set of this CPU, unless `HEADSTART_ENGINE=portable` asks for the
/// portable kernels (decided once per process).
pub fn detected() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        if std::env::var(ENGINE_VAR).is_ok_and(|v| v.eq_ignore_ascii_case("portable")) {
            return Isa::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    })
}

/// Whether this CPU can run `isa`'s kernels.
pub fn supported(isa: Isa) -> bool {
    match isa {
        Isa::Portable => true,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    }
}

/// Runs `f` with this thread's kernels compiled for `isa` (which the CPU must support): how the
/// tests compare the instruction sets within one process.
pub fn force<T>(isa: Isa, f: impl FnOnce() -> T) -> T {
    assert!(supported(isa), "this CPU cannot run the {isa:?} kernels");
    let before = FORCED.with(|c| c.replace(Some(isa)));
    let out = f();
    FORCED.with(|c| c.set(before));
    out
}

/// Defines `fn $name(args) -> ret` (with the visibility given) that runs `$body` compiled for the instruction set
/// of [`isa`]: the body is written once and compiled three times (AVX-512, AVX2 with FMA,
/// portable). The body must be the same arithmetic whatever the vector width (rule 3 above), which
/// plain Rust over independent elements is: the compiler may only vectorise it, not reorder it.
macro_rules! dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
            fn avx512($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
            match $crate::agent::engine::isa() {
                // SAFETY: `isa()` names an instruction set only where the CPU has it (`detected`
                // checks the CPU; `force` refuses what it lacks).
                #[cfg(target_arch = "x86_64")]
                $crate::agent::engine::Isa::Avx512 => unsafe { avx512($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                $crate::agent::engine::Isa::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use dispatch;

/// The lanes of a fixed-lane sum ([`math::sum_squares`]): element `i` goes to lane `i mod LANES`,
/// each lane sums in order, and the lanes are added in order at the end.
pub const LANES: usize = 16;

#[cfg(test)]
pub(crate) mod testing {
    use super::{Isa, supported};

    /// Every instruction set this CPU runs, portable first.
    pub(crate) fn isas() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|&i| supported(i)).collect()
    }

    /// The bits of a slice of floats.
    pub(crate) fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Held by the tests whose libtorch work is heavy (convolutions) and by SAC's gradient test,
    /// whose tolerance rests on libtorch's `tanh` splitting its tensors the same way every run:
    /// with convolutions running in another test thread that split changed and the test failed
    /// about one run in four.
    pub(crate) fn libtorch_alone() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }
}
