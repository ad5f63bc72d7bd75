//! The `appspec.yml` of a server revision (`codedeploy.md` §1): parsing and validation.
//!
//! This module owns the meaning of an appspec: which files go where, which permissions
//! they get, which scripts run for which lifecycle event. It is pure: text in, an
//! [`AppSpec`] or an [`AppSpecError`] out; it never touches the filesystem (the agent finds the file:
//! `appspec.yml`, else `appspec.yaml`). Existing CodeDeploy bundles must parse unchanged, so it follows the
//! CodeDeploy agent's reading (YAML keys, defaults, leniencies) and differs only where
//! the agent is ambiguous (§12), each difference documented where it is made.
//!
//! ```text
//! text ──serde_norway──▶ Value ──document::read_document──▶ AppSpec (+ warnings)
//!                           │ on error: locate::Locator re-reads the text for the line
//!                           ▼
//!                      AppSpecError "appspec.yml line 7: hooks.AfterInstall[0]: missing \"location\""
//! ```

mod acl;
mod document;
mod error;
mod fields;
pub mod lambda_ecs;
mod locate;
mod permission;
mod selinux;

use std::collections::BTreeMap;

use std::time::Duration;

pub use acl::{AclEntry, AclTag};
pub use error::AppSpecError;
pub use fleetmesh_state::model::resources::FileExistsBehavior;
pub use permission::{ObjectType, Permission};
pub use selinux::SeLinuxContext;

use error::{place, Problem};
use locate::Locator;

/// Timeout of a hook script that sets none (§1.5).
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(3600);

/// The longest `timeout` one script may ask for (§1.5: CodeDeploy's limit); a larger one
/// is refused when the appspec is parsed.
pub const SCRIPT_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// What CodeDeploy allows one lifecycle event in total (§1.5, §6.3). The CodeDeploy agent
/// does not reject timeouts that add up to more, so that is only a warning here; the
/// fleetmesh agent enforces the limit while the event runs.
pub const EVENT_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// Largest appspec accepted. Real ones are a few KiB; the cap keeps a hostile bundle
/// from making the parser build a huge tree (aliases are capped by the parser itself).
pub const APPSPEC_BYTES_MAX: usize = 1024 * 1024;

/// Lifecycle events a server appspec can attach scripts to (§2.1).
pub const SCRIPTABLE_EVENTS: [&str; 9] = [
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];

/// The operating system an appspec is written for. fleetmesh hosts run Linux; a
/// `windows` appspec is refused at parse time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Os {
    /// `os: linux`.
    Linux,
}

/// A parsed, validated appspec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    /// Always [`Os::Linux`] once parsed.
    pub os: Os,
    /// What the Install step copies, in appspec order.
    pub files: Vec<FileMapping>,
    /// What the Install step applies after copying, in appspec order.
    pub permissions: Vec<Permission>,
    /// Scripts per lifecycle event name, each list in run order; events with no
    /// scripts are absent.
    pub hooks: BTreeMap<String, Vec<HookScript>>,
    /// The appspec's `file_exists_behavior`; when set it beats the deployment's.
    pub file_exists_behavior: Option<FileExistsBehavior>,
    /// Things that parse but probably do not do what the author meant (a bare `0644`
    /// mode, unknown event names, timeouts over the per-event limit), rendered like
    /// errors (`appspec.yml line 9: permissions[0].mode: …`) for the deployment log.
    pub warnings: Vec<String>,
}

impl AppSpec {
    /// The scripts of `event`, empty when the appspec has none.
    pub fn scripts(&self, event: &str) -> &[HookScript] {
        self.hooks.get(event).map_or(&[], Vec::as_slice)
    }
}

/// One `files` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMapping {
    /// Path inside the revision; a leading `/` is the revision root, and `/` alone is
    /// the whole revision, appspec included (§1.3).
    pub source: String,
    /// Absolute path on the host (resolved under the node's install root).
    pub destination: String,
}

/// One hook script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookScript {
    /// Path of the script relative to the revision root (a leading `/` is dropped).
    pub location: String,
    /// How long the script may run before it and its process group are killed.
    pub timeout: Duration,
    /// User to run the script as; `None` runs it as the fleetmesh user.
    pub runas: Option<String>,
}

/// Parses and validates the appspec `text` read from `file_name` (used in messages).
///
/// # Errors
/// [`AppSpecError`] naming the file, the field and, when the parser can place it, the
/// line: empty or oversized files, YAML syntax errors, and every rule of §1.
pub fn parse(file_name: &str, text: &str) -> Result<AppSpec, AppSpecError> {
    let file = file_name.to_string();
    if text.len() > APPSPEC_BYTES_MAX {
        return Err(AppSpecError::TooLarge { file, bytes: text.len(), bytes_max: APPSPEC_BYTES_MAX });
    }
    let mut root: serde_norway::Value = match serde_norway::from_str(text) {
        Ok(root) => root,
        Err(error) => {
            let line = error.location().map(|location| location.line());
            return Err(AppSpecError::Syntax { file, line, message: syntax_message(&error) });
        }
    };
    if root.is_null() {
        return Err(AppSpecError::Empty { file });
    }
    // The agent's Ruby YAML applies `<<:` merge keys; do the same.
    if let Err(error) = root.apply_merge() {
        return Err(AppSpecError::Syntax { file, line: None, message: syntax_message(&error) });
    }
    let locator = Locator::new(text);
    let mut problems = Vec::new();
    match document::read_document(&root, &locator, &mut problems) {
        Ok(mut spec) => {
            spec.warnings = problems.iter().map(|problem| render_warning(file_name, problem, &locator)).collect();
            Ok(spec)
        }
        Err(problem) => Err(AppSpecError::Invalid {
            file,
            line: locator.line(&problem.path),
            field: problem.path.to_string(),
            problem: problem.message,
        }),
    }
}

fn render_warning(file_name: &str, problem: &Problem, locator: &Locator<'_>) -> String {
    format!("{}: {}: {}", place(file_name, locator.line(&problem.path)), problem.path, problem.message)
}

/// The parser's message without its trailing " at line L column C" (the line is
/// reported separately).
fn syntax_message(error: &serde_norway::Error) -> String {
    let message = error.to_string();
    let Some(location) = error.location() else {
        return message;
    };
    let suffix = format!(" at line {} column {}", location.line(), location.column());
    message.strip_suffix(&suffix).map_or(message.clone(), str::to_string)
}

#[cfg(test)]
mod tests;
