//! The public datasets beside the checkout: `<workspace>/../shared/data/<name>`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Overrides the data folder (the folder that holds `bccd`, `bccd-mini`, ...).
pub const DATA_ROOT_ENV: &str = "ARFPN_DATA";
/// Set to `1` (CI does) to turn a missing dataset from a skip into a test failure.
pub const DATA_REQUIRED_ENV: &str = "ARFPN_DATA_REQUIRED";

/// The folder of dataset `name` (e.g. `"bccd-mini"`): `$ARFPN_DATA/<name>` when
/// `ARFPN_DATA` is set, else `../shared/data/<name>` relative to the workspace root.
///
/// When that folder does not exist, prints `SKIP <test>: ../shared/data/<name> not found
/// (...)` straight to the stderr handle (not through `eprintln!`, which the test harness
/// captures: a skip must show in the CI log) and returns `None`, so the test returns early:
///
/// ```
/// let Some(root) = arfpn_testkit::shared_data("bccd-mini") else { return };
/// assert!(root.ends_with("bccd-mini"));
/// ```
///
/// # Panics
/// When the folder is absent and `ARFPN_DATA_REQUIRED=1`: the test then fails, saying
/// which folder it wanted.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os(DATA_ROOT_ENV).map(PathBuf::from);
    let required = std::env::var(DATA_REQUIRED_ENV).is_ok_and(|v| v == "1");
    resolve(name, base.as_deref(), required, &mut std::io::stderr())
}

/// [`shared_data`] with the environment read by the caller and the skip line written to
/// `log`.
fn resolve(
    name: &str,
    base: Option<&Path>,
    required: bool,
    log: &mut dyn Write,
) -> Option<PathBuf> {
    match locate(name, base) {
        Ok(dir) => Some(dir),
        Err(looked) => {
            let (test, missing) = (test_name(), missing(name, &looked));
            if required {
                panic!("{test}: {missing}, and {DATA_REQUIRED_ENV}=1 makes that a failure");
            }
            let _ = writeln!(log, "SKIP {test}: {missing}");
            None
        }
    }
}

/// The default data folder: `../shared/data` beside the workspace root (this crate lives
/// in `<root>/crates/arfpn-testkit`).
fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// `Ok(dir)` when `<base or default>/<name>` is a folder, else `Err` with the path looked at.
fn locate(name: &str, base: Option<&Path>) -> Result<PathBuf, PathBuf> {
    let dir = base.map_or_else(default_root, Path::to_path_buf).join(name);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(dir)
    }
}

fn missing(name: &str, looked: &Path) -> String {
    format!(
        "../shared/data/{name} not found ({} is not a folder; set {DATA_ROOT_ENV} to the data \
         folder)",
        looked.display()
    )
}

/// The running test's name: libtest names each test's thread after it. Outside the test
/// harness (a bench, the main thread) the executable's name.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => n.to_string(),
        _ => std::env::args_os()
            .next()
            .and_then(|a| {
                Path::new(&a)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "(unknown test)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_folder_under_the_given_base() {
        let base = std::env::temp_dir().join(format!("arfpn-testkit-data-{}", std::process::id()));
        std::fs::create_dir_all(base.join("bccd-mini")).unwrap();
        assert_eq!(locate("bccd-mini", Some(&base)), Ok(base.join("bccd-mini")));
        assert_eq!(locate("absent", Some(&base)), Err(base.join("absent")));
        let mut log = Vec::new();
        assert_eq!(
            resolve("bccd-mini", Some(&base), true, &mut log),
            Some(base.join("bccd-mini"))
        );
        assert!(log.is_empty());
        assert_eq!(resolve("absent", Some(&base), false, &mut log), None);
        let line = String::from_utf8(log).unwrap();
        assert!(
            line.starts_with(
                "SKIP data::tests::finds_a_folder_under_the_given_base: ../shared/data/absent \
                 not found ("
            ),
            "{line}"
        );
        let required =
            std::panic::catch_unwind(|| resolve("absent", Some(&base), true, &mut Vec::new()));
        let message = required
            .expect_err("a required dataset that is absent fails the test")
            .downcast::<String>()
            .expect("a formatted panic message");
        assert!(
            message.contains("../shared/data/absent not found")
                && message.contains("ARFPN_DATA_REQUIRED=1 makes that a failure"),
            "{message}"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn default_root_is_beside_the_workspace() {
        let root = default_root();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        assert!(workspace.join("Cargo.toml").is_file());
        assert!(root.ends_with("../../../shared/data"));
    }

    #[test]
    fn the_skip_line_names_the_test_and_the_dataset() {
        assert!(test_name().contains("the_skip_line_names_the_test_and_the_dataset"));
        let m = missing("bccd", Path::new("/x/bccd"));
        assert!(
            m.starts_with("../shared/data/bccd not found (/x/bccd is not a folder"),
            "{m}"
        );
    }
}
