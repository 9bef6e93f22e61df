//! `cargo xtask cross`: the cross-architecture proof (issue 6). Builds the `musketeer` client for
//! ARMv7 and arm64 (release, as volunteers get it), then runs the ignored end-to-end test
//! `cross_arch` (client/tests/e2e/cross_arch.rs), in which those clients join one server under
//! qemu-user beside the native one and every quorum-3 unit must agree byte for byte and fuel for
//! fuel.
//!
//! Also home of the check that the machine has the system packages the tests need, so that
//! `cargo xtask test` says what is missing before it starts rather than after half an hour.

use std::path::Path;

use crate::cargo;

/// The cross targets, as in rust-toolchain.toml.
pub const TARGETS: [&str; 2] = ["armv7-unknown-linux-gnueabihf", "aarch64-unknown-linux-gnu"];

/// Debian packages the whole test run needs beyond rustup, with a file each one provides.
const PACKAGES: &[(&str, &str)] = &[
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
    ("qemu-user", "/usr/bin/qemu-arm"),
    ("qemu-user", "/usr/bin/qemu-aarch64"),
    (
        "gcc-arm-linux-gnueabihf",
        "/usr/bin/arm-linux-gnueabihf-gcc",
    ),
    ("gcc-aarch64-linux-gnu", "/usr/bin/aarch64-linux-gnu-gcc"),
    ("libc6-dev-armhf-cross", "/usr/arm-linux-gnueabihf/lib"),
    ("libc6-dev-arm64-cross", "/usr/aarch64-linux-gnu/lib"),
    // componentize-js builds the JavaScript task modules (tasks/artifacts/js_tasks.rs).
    ("nodejs", "/usr/bin/node"),
    ("npm", "/usr/bin/npm"),
];

/// Fails with the `apt-get` line to run when a package the tests need is missing.
pub fn check_system_packages() -> Result<(), String> {
    let mut missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(package, _)| *package)
        .collect();
    missing.dedup();
    if !has_postgresql() {
        missing.push("postgresql");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the tests need Debian packages that are not installed: {list}\n\
         install them with: apt-get update && apt-get install -y --no-install-recommends {list}\n\
         (.ci/run does this on CI machines)",
        list = missing.join(" ")
    ))
}

/// Whether PostgreSQL's server programs are installed, whatever the major version (the
/// PostgreSQL store's tests run them: server/tests/it/pg_support.rs).
fn has_postgresql() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|version| version.path().join("bin/initdb").is_file())
}

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(unknown) = args.first() {
        return Err(format!(
            "`cargo xtask cross` takes no arguments (got {unknown:?})"
        ));
    }
    check_system_packages()?;
    let mut build = vec!["build", "--release", "-p", "musketeer-client"];
    for target in TARGETS {
        build.extend(["--target", target]);
    }
    cargo(&build)?;
    // `--workspace`, as in `cargo test --workspace`: the same feature resolution, so nothing
    // that run built is rebuilt for this one (`-p musketeer-client` alone rebuilds ~3 minutes).
    cargo(&[
        "test",
        "--workspace",
        "--test",
        "e2e",
        "cross_arch",
        "--",
        "--ignored",
        // Its per-unit lines (architectures, fuel) belong in the CI log.
        "--nocapture",
        "--exact",
        "cross_arch::one_module_gives_identical_bytes_and_fuel_on_every_architecture",
    ])
}
