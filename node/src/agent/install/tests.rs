//! Scenario tests of the Install step on temporary hosts: a revision, an install root
//! and an instructions directory, installs run against them, the files checked after.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use super::*;
use fleetmesh_core::appspec::parse;

/// A host with one unpacked revision.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        let host = Self { dir: tempfile::tempdir().expect("temp dir") };
        std::fs::create_dir_all(host.root()).expect("install root");
        std::fs::create_dir_all(host.archive()).expect("archive");
        host
    }

    fn archive(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn instructions(&self) -> PathBuf {
        self.dir.path().join("deployment-instructions")
    }

    /// The host path of an absolute appspec destination.
    fn at(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    /// Adds `relative` with `contents` to the revision.
    fn bundle_file(&self, relative: &str, contents: &str) {
        let path = self.archive().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("bundle dir");
        std::fs::write(path, contents).expect("bundle file");
    }

    /// Replaces the revision with a fresh, empty one.
    fn new_revision(&self) {
        std::fs::remove_dir_all(self.archive()).expect("remove archive");
        std::fs::create_dir_all(self.archive()).expect("archive");
    }

    fn install_with(&self, appspec: &str, behavior: FileExistsBehavior) -> Result<InstallReport, InstallError> {
        let spec = parse("appspec.yml", appspec).expect("test appspec parses");
        let archive = self.archive();
        let root = self.root();
        let instructions = self.instructions();
        install(&InstallPlan {
            appspec: &spec,
            archive_root: &archive,
            install_root: &root,
            instructions_dir: &instructions,
            deployment_group_id: "dg-1",
            file_exists_behavior: behavior,
        })
    }

    fn install(&self, appspec: &str) -> InstallReport {
        match self.install_with(appspec, FileExistsBehavior::Disallow) {
            Ok(report) => report,
            Err(error) => panic!("install should succeed: {error}"),
        }
    }

    fn install_err(&self, appspec: &str, behavior: FileExistsBehavior) -> String {
        match self.install_with(appspec, behavior) {
            Ok(report) => panic!("install should fail: {report:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn cleanup_list(&self) -> Vec<PathBuf> {
        let text = std::fs::read_to_string(self.instructions().join("dg-1-cleanup")).expect("cleanup file");
        text.lines().map(PathBuf::from).collect()
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.at(path)).expect("installed file")
    }

    fn mode(&self, path: &str) -> u32 {
        std::fs::symlink_metadata(self.at(path)).expect("stat").permissions().mode() & 0o7777
    }
}

fn appspec(body: &str) -> String {
    format!("version: 0.0\nos: linux\n{body}")
}

#[test]
fn file_source_goes_into_destination_directory() {
    // Installs one file to a destination whose directories do not exist; asserts the
    // file at dest/<name>, each missing level created and recorded (top down, before
    // the file), and install.json written.
    let host = Host::new();
    host.bundle_file("config/app.conf", "port=80\n");
    let report = host.install(&appspec("files:\n  - source: config/app.conf\n    destination: /etc/app\n"));
    assert_eq!(host.read("/etc/app/app.conf"), "port=80\n");
    assert_eq!(report.created_directories, vec![host.at("/etc"), host.at("/etc/app")]);
    assert_eq!(report.copied, vec![host.at("/etc/app/app.conf")]);
    assert_eq!(host.cleanup_list(), vec![host.at("/etc"), host.at("/etc/app"), host.at("/etc/app/app.conf")]);
    let json = std::fs::read_to_string(host.instructions().join("dg-1-install.json")).expect("install.json");
    assert!(json.starts_with(r#"{"instructions":[{"type":"mkdir","directory":"#), "{json}");
    assert!(json.contains(r#""type":"copy""#), "{json}");
}

#[test]
fn directory_source_copies_its_contents_and_keeps_modes_and_links() {
    // Installs a directory with a nested directory, an executable and a symlink into an
    // existing destination; asserts contents land directly in it, the existing
    // destination is not recorded, the mode is kept and the symlink recreated.
    let host = Host::new();
    host.bundle_file("web/index.html", "<h1>hi</h1>");
    host.bundle_file("web/css/site.css", "body{}");
    host.bundle_file("web/bin/run", "#!/bin/sh\n");
    std::fs::set_permissions(host.archive().join("web/bin/run"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::os::unix::fs::symlink("index.html", host.archive().join("web/home.html")).expect("symlink");
    std::fs::create_dir_all(host.at("/srv/www")).expect("existing destination");
    let report = host.install(&appspec("files:\n  - source: web\n    destination: /srv/www\n"));
    assert_eq!(host.read("/srv/www/index.html"), "<h1>hi</h1>");
    assert_eq!(host.read("/srv/www/css/site.css"), "body{}");
    assert_eq!(host.mode("/srv/www/bin/run"), 0o755);
    assert_eq!(std::fs::read_link(host.at("/srv/www/home.html")).expect("link"), PathBuf::from("index.html"));
    assert!(!host.at("/srv/www/web").exists());
    assert_eq!(report.created_directories, vec![host.at("/srv/www/bin"), host.at("/srv/www/css")]);
    assert!(!host.cleanup_list().contains(&host.at("/srv/www")));
}

#[test]
fn root_source_installs_the_whole_bundle_with_the_appspec() {
    // Installs `source: /`; asserts the appspec and the scripts are installed too.
    let host = Host::new();
    host.bundle_file("appspec.yml", "version: 0.0\n");
    host.bundle_file("scripts/start.sh", "echo\n");
    host.install(&appspec("files:\n  - source: /\n    destination: /opt/app\n"));
    assert_eq!(host.read("/opt/app/appspec.yml"), "version: 0.0\n");
    assert_eq!(host.read("/opt/app/scripts/start.sh"), "echo\n");
}

#[test]
fn existing_files_follow_file_exists_behavior() {
    // Puts a foreign file where the revision installs one; asserts DISALLOW fails naming
    // the path, OVERWRITE (deployment-level) replaces and records it, and RETAIN (set in
    // the appspec, beating the deployment's DISALLOW) keeps it unrecorded.
    let host = Host::new();
    host.bundle_file("app.conf", "new");
    std::fs::create_dir_all(host.at("/etc/app")).expect("dir");
    std::fs::write(host.at("/etc/app/app.conf"), "old").expect("foreign file");
    let files = "files:\n  - source: app.conf\n    destination: /etc/app\n";

    let message = host.install_err(&appspec(files), FileExistsBehavior::Disallow);
    assert_eq!(
        message,
        format!(
            "a specified file already exists at this location: {}; remove it, or set file_exists_behavior to \
             OVERWRITE or RETAIN",
            host.at("/etc/app/app.conf").display()
        )
    );
    assert_eq!(host.read("/etc/app/app.conf"), "old");

    let retain = format!("{files}file_exists_behavior: RETAIN\n");
    let report = host.install_with(&appspec(&retain), FileExistsBehavior::Disallow).expect("retain");
    assert_eq!(report.retained, vec![host.at("/etc/app/app.conf")]);
    assert_eq!(host.read("/etc/app/app.conf"), "old");
    // Recorded as installed (§7.2), so the next install's cleanup removes it.
    assert_eq!(host.cleanup_list(), vec![host.at("/etc/app/app.conf")]);

    // The next install's cleanup removes the retained file first (the §7.2 trap), so it
    // is copied anew rather than overwritten.
    let report = host.install_with(&appspec(files), FileExistsBehavior::Overwrite).expect("overwrite");
    assert!(report.overwritten.is_empty());
    assert_eq!(report.copied, vec![host.at("/etc/app/app.conf")]);
    assert_eq!(host.read("/etc/app/app.conf"), "new");
    assert_eq!(host.cleanup_list(), vec![host.at("/etc/app/app.conf")]);
}

#[test]
fn second_install_removes_the_first_but_keeps_foreign_files() {
    // Installs revision 1 (two files in new dirs), adds a foreign file into one of its
    // directories, then installs revision 2 with different files; asserts revision 1's
    // files are gone, the directory holding the foreign file survives with it, the
    // empty one is gone, and revision 2 is in place.
    let host = Host::new();
    host.bundle_file("one/a.txt", "a");
    host.bundle_file("one/logs/b.txt", "b");
    let first = host.install(&appspec("files:\n  - source: one\n    destination: /srv/app\n"));
    assert_eq!(first.copied.len(), 2);
    std::fs::write(host.at("/srv/app/foreign.txt"), "mine").expect("foreign");

    host.new_revision();
    host.bundle_file("two/c.txt", "c");
    let second = host.install(&appspec("files:\n  - source: two\n    destination: /srv/app2\n"));
    assert_eq!(second.cleaned_up, 5); // /srv, /srv/app, a.txt, logs, logs/b.txt
    assert!(!host.at("/srv/app/a.txt").exists());
    assert!(!host.at("/srv/app/logs").exists());
    assert_eq!(host.read("/srv/app/foreign.txt"), "mine");
    assert_eq!(host.read("/srv/app2/c.txt"), "c");
    // /srv survives: it is not empty (app with the foreign file, app2 just installed).
    assert!(host.at("/srv").is_dir());
    assert!(!host.cleanup_list().contains(&host.at("/srv")));
}

#[test]
fn modes_and_owners_are_applied_to_installed_paths() {
    // Installs files and a directory with a mode on the file object and another entry
    // on the directory's subdirectories; asserts each mode, and (as root) the owner.
    let host = Host::new();
    host.bundle_file("app/run.sh", "#!/bin/sh\n");
    host.bundle_file("app/data/x", "x");
    let owner = if nix::unistd::geteuid().is_root() { "    owner: nobody\n" } else { "" };
    let spec = appspec(&format!(
        "files:\n  - source: app\n    destination: /opt/app\npermissions:\n  - object: /opt/app/run.sh\n    mode: 750\n{owner}  - object: /opt/app\n    mode: 0700\n    type: [directory]\n"
    ));
    let report = host.install(&spec);
    assert_eq!(host.mode("/opt/app/run.sh"), 0o750);
    assert_eq!(host.mode("/opt/app/data"), 0o700);
    // The object itself is never matched by its own entry.
    assert_ne!(host.mode("/opt/app"), 0o700);
    if nix::unistd::geteuid().is_root() {
        let nobody = nix::unistd::User::from_name("nobody").expect("lookup").expect("nobody");
        assert_eq!(std::fs::metadata(host.at("/opt/app/run.sh")).expect("stat").uid(), nobody.uid.as_raw());
        assert_eq!(report.permissions_applied, 3);
    } else {
        assert_eq!(report.permissions_applied, 2);
    }
}

#[test]
fn pattern_except_and_type_select_paths() {
    // Installs html files, a nested css file and a directory; applies a mode to
    // "*.html" except "skip.html", files only; asserts only index.html changed (the
    // nested file and the directory are not direct matches).
    let host = Host::new();
    for name in ["index.html", "skip.html", "notes.txt", "sub/deep.html"] {
        host.bundle_file(&format!("site/{name}"), name);
        std::fs::set_permissions(host.archive().join("site").join(name), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    let spec = appspec(
        "files:\n  - source: site\n    destination: /www\npermissions:\n  - object: /www\n    pattern: \"*.html\"\n    except: [skip.html]\n    type: [file]\n    mode: 600\n",
    );
    host.install(&spec);
    assert_eq!(host.mode("/www/index.html"), 0o600);
    assert_eq!(host.mode("/www/skip.html"), 0o644);
    assert_eq!(host.mode("/www/notes.txt"), 0o644);
    assert_eq!(host.mode("/www/sub/deep.html"), 0o644);
}

#[test]
fn conflicting_appspecs_are_refused_before_copying() {
    // Installs two sources with the same file name into one destination, then a file
    // over a directory the install creates; asserts each refusal and that nothing of
    // either attempt was left behind.
    let host = Host::new();
    host.bundle_file("a/app.conf", "a");
    host.bundle_file("b/app.conf", "b");
    let message = host.install_err(
        &appspec(
            "files:\n  - source: a/app.conf\n    destination: /etc\n  - source: b/app.conf\n    destination: /etc\n",
        ),
        FileExistsBehavior::Overwrite,
    );
    assert_eq!(
        message,
        format!(
            "two source files, {} and {}, are installed at the same destination {}; remove one from the appspec",
            host.archive().join("a/app.conf").display(),
            host.archive().join("b/app.conf").display(),
            host.at("/etc/app.conf").display()
        )
    );
    assert!(!host.at("/etc").exists());

    host.bundle_file("tree/conf/x", "x");
    host.bundle_file("conf", "file named like the directory");
    let message = host.install_err(
        &appspec("files:\n  - source: tree\n    destination: /opt\n  - source: conf\n    destination: /opt\n"),
        FileExistsBehavior::Disallow,
    );
    assert!(
        message.ends_with(&format!("{}, where this install also creates a directory", host.at("/opt/conf").display())),
        "{message}"
    );
    assert!(!host.at("/opt").exists());
}

#[test]
fn permission_errors_name_the_entry() {
    // Applies two entries to one path, a pattern to a file object, and an unknown
    // owner; asserts each exact message.
    let host = Host::new();
    host.bundle_file("app/x.sh", "x");
    let files = "files:\n  - source: app\n    destination: /opt/app\n";
    let twice = appspec(&format!(
        "{files}permissions:\n  - object: /opt/app\n    mode: 755\n  - object: /opt/app/x.sh\n    mode: 700\n"
    ));
    assert_eq!(
        host.install_err(&twice, FileExistsBehavior::Disallow),
        format!(
            "permissions[1]: {} already gets permissions from permissions[0]; a path may be set by one entry only",
            host.at("/opt/app/x.sh").display()
        )
    );
    let pattern = appspec(&format!("{files}permissions:\n  - object: /opt/app/x.sh\n    pattern: \"*.sh\"\n"));
    assert_eq!(
        host.install_err(&pattern, FileExistsBehavior::Disallow),
        format!(
            "permissions[0]: object {} is a file, so pattern must be \"**\" and except empty",
            host.at("/opt/app/x.sh").display()
        )
    );
    let owner = appspec(&format!("{files}permissions:\n  - object: /opt/app\n    owner: fleetmesh-no-such-user\n"));
    assert_eq!(
        host.install_err(&owner, FileExistsBehavior::Disallow),
        "permissions[0].owner: user \"fleetmesh-no-such-user\" does not exist on this host"
    );
}

#[test]
fn unknown_owner_fails_before_the_previous_install_is_cleaned_up() {
    // Installs a revision, then a second one whose permissions name an unknown group;
    // asserts the second fails and the first install's files are still there.
    let host = Host::new();
    host.bundle_file("one.txt", "1");
    host.install(&appspec("files:\n  - source: one.txt\n    destination: /srv\n"));
    let bad = appspec("files:\n  - source: one.txt\n    destination: /srv2\npermissions:\n  - object: /srv2\n    group: fleetmesh-no-such-group\n");
    assert_eq!(
        host.install_err(&bad, FileExistsBehavior::Disallow),
        "permissions[0].group: group \"fleetmesh-no-such-group\" does not exist on this host"
    );
    assert_eq!(host.read("/srv/one.txt"), "1");
}

#[test]
fn acls_need_setfacl() {
    // Applies an ACL entry; where setfacl exists asserts the ACL is set, elsewhere
    // asserts the refusal names the missing tool and the entry.
    let host = Host::new();
    host.bundle_file("a.txt", "a");
    let spec = appspec("files:\n  - source: a.txt\n    destination: /d\npermissions:\n  - object: /d/a.txt\n    acls: [\"u:root:rw\"]\n");
    if permissions::is_installed("setfacl") {
        host.install(&spec);
        let output = std::process::Command::new("getfacl").arg(host.at("/d/a.txt")).output().expect("getfacl");
        assert!(String::from_utf8_lossy(&output.stdout).contains("user:root:rw-"));
    } else {
        assert_eq!(
            host.install_err(&spec, FileExistsBehavior::Disallow),
            "permissions[0].acls needs the setfacl command, which is not installed on this host; install the acl \
             package or remove acls"
        );
    }
}

#[test]
fn crash_truncated_cleanup_line_is_dropped() {
    // Leaves a cleanup list whose last line was cut mid-write (pointing, truncated, at
    // a foreign file's name prefix that exists); asserts the complete entry is removed,
    // the torn one is not, and the list is replaced by the new install's.
    let host = Host::new();
    std::fs::create_dir_all(host.instructions()).expect("instructions dir");
    std::fs::write(host.at("installed.txt"), "ours").expect("installed file");
    std::fs::write(host.at("fore"), "foreign").expect("foreign file");
    let list = format!("{}\n{}", host.at("installed.txt").display(), host.at("fore").display());
    std::fs::write(host.instructions().join("dg-1-cleanup"), list).expect("torn list");
    host.bundle_file("new.txt", "new");
    let report = host.install(&appspec("files:\n  - source: new.txt\n    destination: /\n"));
    assert_eq!(report.cleaned_up, 1);
    assert!(!host.at("installed.txt").exists());
    assert_eq!(host.read("/fore"), "foreign");
    assert_eq!(host.cleanup_list(), vec![host.at("/new.txt")]);
}

#[test]
fn missing_source_names_the_entry() {
    // Points a files entry at a path the revision lacks; asserts the message.
    let host = Host::new();
    let message =
        host.install_err(&appspec("files:\n  - source: nope\n    destination: /x\n"), FileExistsBehavior::Disallow);
    assert_eq!(
        message,
        format!(
            "files[0].source: \"nope\" does not exist in the revision (looked for {})",
            host.archive().join("nope").display()
        )
    );
}

#[test]
fn destinations_cannot_escape_the_install_root() {
    // Installs to a destination full of `..`; asserts the file lands inside the root.
    let host = Host::new();
    host.bundle_file("f", "f");
    host.install(&appspec("files:\n  - source: f\n    destination: /../../../escape\n"));
    assert_eq!(host.read("/escape/f"), "f");
    assert!(!host.dir.path().join("escape").exists());
}

#[test]
fn redeploying_the_same_revision_under_disallow_succeeds() {
    // Installs a revision twice with the default DISALLOW; asserts the second install
    // does not trip over the first one's files (cleanup runs first, §7.3) and leaves
    // the same cleanup list.
    let host = Host::new();
    host.bundle_file("app/index.html", "v1");
    let spec = appspec("files:\n  - source: app\n    destination: /srv/app\n");
    host.install(&spec);
    let first_list = host.cleanup_list();
    let report = host.install(&spec);
    assert_eq!(report.cleaned_up, first_list.len());
    assert_eq!(host.read("/srv/app/index.html"), "v1");
    assert_eq!(host.cleanup_list(), first_list);
}

/// Tells `install_in_a_prepared_host` (run as a child process) which host to use.
const PREPARED_HOST: &str = "FLEETMESH_INSTALL_PREPARED_HOST";

#[test]
fn a_file_size_limit_mid_copy_leaves_no_truncated_file() {
    // Prepares a host whose revision holds a 1 MiB file over an existing old copy, then
    // installs it (OVERWRITE) in a child test process under `ulimit -f 64` with SIGXFSZ
    // ignored, so the copy fails partway with EFBIG as on a full disk; asserts the
    // install failed naming the file, the old file is whole and no temporary is left.
    let host = Host::new();
    host.bundle_file("big.bin", &"x".repeat(1 << 20));
    std::fs::create_dir_all(host.at("/srv")).expect("srv");
    std::fs::write(host.at("/srv/big.bin"), "old").expect("old file");
    let stdout = crate::revision::testkit::run_under_file_size_limit(
        "agent::install::tests::install_in_a_prepared_host",
        PREPARED_HOST,
        host.dir.path(),
    );
    assert!(
        stdout.contains("install failed: cannot copy to ") && stdout.contains("big.bin: File too large"),
        "{stdout}"
    );
    assert_eq!(host.read("/srv/big.bin"), "old");
    let names: Vec<_> =
        std::fs::read_dir(host.at("/srv")).expect("srv").map(|entry| entry.expect("entry").file_name()).collect();
    assert_eq!(names, ["big.bin"]);
}

#[test]
#[ignore = "a child process of a_file_size_limit_mid_copy_leaves_no_truncated_file"]
fn install_in_a_prepared_host() {
    // Installs the prepared host's revision (OVERWRITE) and prints the error it expects.
    let Some(dir) = std::env::var_os(PREPARED_HOST).map(PathBuf::from) else {
        return;
    };
    let spec = parse("appspec.yml", &appspec("files:\n  - source: big.bin\n    destination: /srv\n")).expect("appspec");
    let result = install(&InstallPlan {
        appspec: &spec,
        archive_root: &dir.join("archive"),
        install_root: &dir.join("root"),
        instructions_dir: &dir.join("deployment-instructions"),
        deployment_group_id: "dg-1",
        file_exists_behavior: FileExistsBehavior::Overwrite,
    });
    match result {
        Ok(report) => panic!("install should fail under the file size limit: {report:?}"),
        Err(error) => println!("install failed: {error}"),
    }
}
