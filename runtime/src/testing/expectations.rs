//! What tests expect of particular adapters and drivers, in one list.
//!
//! Modelled on wgpu's `tests/src/expectations.rs`: each [`Quirk`] names the
//! adapters it applies to (an [`AdapterFilter`]), what it is about (a
//! `subject` a test asks for), the expected behaviour and why. Tests do not
//! test for a driver by name themselves; they ask here.
//!
//! - [`check_failure`]: a failure (a tuning candidate, a kernel) is accepted
//!   only if a quirk expects it on this adapter, with a matching message.
//! - [`check_pass`]: something listed as failing that passes is reported too,
//!   so that a fixed driver retires its quirk.
//! - [`check_subgroups`]: where an adapter is known to run subgroups of at
//!   least some width, a test relying on them (the subgroup matmul is only
//!   planned on subgroups of 8 or more) fails instead of silently testing less.

use crate::{AdapterIdentity, DeviceLimits};

/// Which adapters a quirk applies to. Every given field must match; text is
/// compared case-insensitively, by containment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdapterFilter {
    /// Each of these appears in the adapter's name, e.g. `llvmpipe`.
    pub name: &'static [&'static str],
    /// Appears in the driver (`llvmpipe`) or its info (`Mesa 22.3.6 (LLVM 15.0.6)`).
    pub driver: Option<&'static str>,
    /// The backend, e.g. `vulkan`.
    pub backend: Option<&'static str>,
}

impl AdapterFilter {
    /// Every adapter.
    pub const ANY: AdapterFilter = AdapterFilter { name: &[], driver: None, backend: None };

    pub fn matches(&self, adapter: &AdapterIdentity) -> bool {
        let contains = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        self.name.iter().all(|n| contains(&adapter.name, n))
            && self.driver.is_none_or(|d| contains(&adapter.driver, d) || contains(&adapter.driver_info, d))
            && self.backend.is_none_or(|b| adapter.backend.eq_ignore_ascii_case(b))
    }
}

/// The behaviour a quirk expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The subject fails, with an error containing this text.
    Fails { error_contains: &'static str },
    /// The adapter has subgroup operations at least this wide.
    SubgroupsAtLeast(u32),
}

/// One known behaviour of some adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quirk {
    pub adapter: AdapterFilter,
    /// What the expectation is about, as the test names it (e.g. `subgroups`,
    /// or `attention candidate 64x64 r4 unchecked`); an exact match.
    pub subject: &'static str,
    pub expect: Expect,
    /// Why: the driver behaviour, with a reference where there is one.
    pub reason: &'static str,
}

/// The subject [`check_subgroups`] looks up.
pub const SUBGROUPS: &str = "subgroups";

/// Every known quirk. Add one only for behaviour observed on a real adapter,
/// with the reason.
pub const KNOWN: &[Quirk] = &[Quirk {
    // llvmpipe's subgroup is its SIMD width in 32-bit lanes: 8 with 256-bit
    // vectors (AVX2), which its adapter name states as `256 bits`.
    adapter: AdapterFilter { name: &["llvmpipe", "256 bits"], driver: None, backend: None },
    subject: SUBGROUPS,
    expect: Expect::SubgroupsAtLeast(8),
    reason: "lavapipe runs subgroups as wide as its 256-bit vectors (8 lanes), so the subgroup matmul \
             kernels are planned and must be tested there",
}];

/// The quirks of `list` for `subject` on `adapter`.
pub fn quirks_in<'a>(list: &'a [Quirk], adapter: &AdapterIdentity, subject: &str) -> Vec<&'a Quirk> {
    list.iter().filter(|q| q.subject == subject && q.adapter.matches(adapter)).collect()
}

/// The known quirks for `subject` on `adapter`.
pub fn quirks(adapter: &AdapterIdentity, subject: &str) -> Vec<&'static Quirk> {
    quirks_in(KNOWN, adapter, subject)
}

/// `Ok` if `subject` failing with `error` on `adapter` is expected by a quirk
/// of `list` (the reason, for the log); otherwise the failure, as a message
/// naming the subject, the adapter and the error.
pub fn check_failure_in(
    list: &[Quirk],
    adapter: &AdapterIdentity,
    subject: &str,
    error: &str,
) -> Result<&'static str, String> {
    for q in quirks_in(list, adapter, subject) {
        if let Expect::Fails { error_contains } = q.expect
            && error.contains(error_contains)
        {
            return Ok(q.reason);
        }
    }
    Err(format!("{subject} failed on {}: {error}", adapter.name))
}

/// [`check_failure_in`] over [`KNOWN`].
pub fn check_failure(adapter: &AdapterIdentity, subject: &str, error: &str) -> Result<&'static str, String> {
    check_failure_in(KNOWN, adapter, subject, error)
}

/// `Err` if a quirk of `list` expects `subject` to fail on `adapter`, but it passed.
pub fn check_pass_in(list: &[Quirk], adapter: &AdapterIdentity, subject: &str) -> Result<(), String> {
    match quirks_in(list, adapter, subject).iter().find(|q| matches!(q.expect, Expect::Fails { .. })) {
        Some(q) => Err(format!(
            "{subject} passed on {}, but a quirk expects it to fail ({}); remove the quirk if the driver is fixed",
            adapter.name, q.reason
        )),
        None => Ok(()),
    }
}

/// [`check_pass_in`] over [`KNOWN`].
pub fn check_pass(adapter: &AdapterIdentity, subject: &str) -> Result<(), String> {
    check_pass_in(KNOWN, adapter, subject)
}

/// `Err` if a quirk of `list` says `adapter` has subgroups of some width, but
/// `limits` report none or narrower ones.
pub fn check_subgroups_in(
    list: &[Quirk],
    adapter: &AdapterIdentity,
    limits: &DeviceLimits,
) -> Result<(), String> {
    for q in quirks_in(list, adapter, SUBGROUPS) {
        if let Expect::SubgroupsAtLeast(width) = q.expect
            && limits.subgroup_min_size.is_none_or(|s| s < width)
        {
            return Err(format!(
                "{} reports subgroups of {:?}, but is expected to have at least {width} lanes: {}",
                adapter.name, limits.subgroup_min_size, q.reason
            ));
        }
    }
    Ok(())
}

/// [`check_subgroups_in`] over [`KNOWN`].
pub fn check_subgroups(adapter: &AdapterIdentity, limits: &DeviceLimits) -> Result<(), String> {
    check_subgroups_in(KNOWN, adapter, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str) -> AdapterIdentity {
        AdapterIdentity {
            name: name.into(),
            driver: "llvmpipe".into(),
            driver_info: "Mesa 22.3.6 (LLVM 15.0.6)".into(),
            backend: "vulkan".into(),
        }
    }

    const FAILS: &[Quirk] = &[Quirk {
        adapter: AdapterFilter { name: &["llvmpipe"], driver: Some("mesa 22"), backend: Some("vulkan") },
        subject: "candidate x",
        expect: Expect::Fails { error_contains: "out of registers" },
        reason: "a test quirk",
    }];

    #[test]
    fn filters_match_by_name_driver_and_backend() {
        let lavapipe = adapter("llvmpipe (LLVM 15.0.6, 256 bits)");
        assert!(AdapterFilter::ANY.matches(&lavapipe));
        assert!(FAILS[0].adapter.matches(&lavapipe));
        assert!(!FAILS[0].adapter.matches(&adapter("AMD Radeon RX 7900")));
        let gl = AdapterIdentity { backend: "gl".into(), ..lavapipe.clone() };
        assert!(!FAILS[0].adapter.matches(&gl));
        let newer = AdapterIdentity { driver_info: "Mesa 25.0.7".into(), ..lavapipe };
        assert!(!FAILS[0].adapter.matches(&newer));
    }

    #[test]
    fn only_an_expected_failure_with_its_message_is_accepted() {
        let lavapipe = adapter("llvmpipe (LLVM 15.0.6, 256 bits)");
        assert_eq!(
            check_failure_in(FAILS, &lavapipe, "candidate x", "compiling: out of registers"),
            Ok("a test quirk")
        );
        let err = check_failure_in(FAILS, &lavapipe, "candidate x", "wrong result").unwrap_err();
        assert_eq!(err, "candidate x failed on llvmpipe (LLVM 15.0.6, 256 bits): wrong result");
        let err =
            check_failure_in(FAILS, &adapter("Other GPU"), "candidate x", "out of registers").unwrap_err();
        assert_eq!(err, "candidate x failed on Other GPU: out of registers");
        let err = check_pass_in(FAILS, &lavapipe, "candidate x").unwrap_err();
        assert!(err.starts_with("candidate x passed on llvmpipe"), "{err}");
        assert_eq!(check_pass_in(FAILS, &lavapipe, "candidate y"), Ok(()));
    }

    #[test]
    fn missing_subgroups_are_reported_where_a_quirk_promises_them() {
        let limits = |size| DeviceLimits { subgroup_min_size: size, cpu: true, ..DeviceLimits::default() };
        let lavapipe = adapter("llvmpipe (LLVM 15.0.6, 256 bits)");
        assert_eq!(check_subgroups(&lavapipe, &limits(Some(8))), Ok(()));
        let err = check_subgroups(&lavapipe, &limits(Some(4))).unwrap_err();
        assert!(
            err.contains("reports subgroups of Some(4), but is expected to have at least 8 lanes"),
            "{err}"
        );
        assert!(check_subgroups(&lavapipe, &limits(None)).is_err());
        // A 128-bit llvmpipe promises nothing.
        assert_eq!(check_subgroups(&adapter("llvmpipe (LLVM 15.0.6, 128 bits)"), &limits(Some(4))), Ok(()));
    }
}
