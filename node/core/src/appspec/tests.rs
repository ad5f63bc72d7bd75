//! Scenario tests of `parse`: a whole appspec text in, the exact result or message out.

use proptest::prelude::*;

use super::*;

fn parse_ok(text: &str) -> AppSpec {
    match parse("appspec.yml", text) {
        Ok(spec) => spec,
        Err(error) => panic!("appspec should parse: {error}"),
    }
}

fn parse_err(text: &str) -> String {
    match parse("appspec.yml", text) {
        Ok(spec) => panic!("appspec should be refused: {spec:?}"),
        Err(error) => error.to_string(),
    }
}

const FULL: &str = r#"version: 0.0
os: linux
files:
  - source: /
    destination: /srv/app
  - source: config/app.conf
    destination: /etc/app
permissions:
  - object: /srv/app
    pattern: "*.sh"
    except: [skip.sh]
    owner: app
    group: app
    mode: 755
    type:
      - file
  - object: /etc/app
    acls:
      - u:alice:rw
      - d:g:web:rx
    context:
      user: system_u
      type: httpd_sys_content_t
      range: s0
hooks:
  ApplicationStop:
  BeforeInstall: []
  AfterInstall:
    - location: scripts/install.sh
      timeout: "300"
      runas: app
    - location: scripts/second.sh
  ApplicationStart:
    - location: scripts/start.sh
      timeout: 60
file_exists_behavior: OVERWRITE
unknown_key: ignored
"#;

#[test]
fn a_complete_appspec_parses() {
    // Parses an appspec using every section; asserts the typed result field by field,
    // including defaults (timeout 3600, pattern **, both types) and ignored keys.
    let spec = parse_ok(FULL);
    assert_eq!(spec.os, Os::Linux);
    assert_eq!(
        spec.files,
        vec![
            FileMapping { source: "/".into(), destination: "/srv/app".into() },
            FileMapping { source: "config/app.conf".into(), destination: "/etc/app".into() },
        ]
    );
    assert_eq!(spec.file_exists_behavior, Some(FileExistsBehavior::Overwrite));
    let first = &spec.permissions[0];
    assert_eq!(first.pattern, "*.sh");
    assert_eq!(first.except, vec!["skip.sh".to_string()]);
    assert_eq!(first.types, vec![ObjectType::File]);
    assert_eq!(first.mode, Some(0o755));
    assert_eq!(first.owner.as_deref(), Some("app"));
    let second = &spec.permissions[1];
    assert_eq!(second.pattern, "**");
    assert_eq!(second.types, vec![ObjectType::File, ObjectType::Directory]);
    assert_eq!(
        second.acls.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["user:alice:rw-", "default:group:web:r-x"]
    );
    assert_eq!(
        second.context,
        Some(SeLinuxContext {
            user: Some("system_u".into()),
            kind: "httpd_sys_content_t".into(),
            range: Some("s0".into())
        })
    );
    // Null and empty events are dropped (§1.5).
    assert_eq!(spec.hooks.keys().collect::<Vec<_>>(), ["AfterInstall", "ApplicationStart"]);
    assert_eq!(
        spec.scripts("AfterInstall"),
        [
            HookScript {
                location: "scripts/install.sh".into(),
                timeout: Duration::from_secs(300),
                runas: Some("app".into())
            },
            HookScript { location: "scripts/second.sh".into(), timeout: DEFAULT_HOOK_TIMEOUT, runas: None },
        ]
    );
    assert_eq!(spec.scripts("ApplicationStart")[0].timeout, Duration::from_secs(60));
    assert!(spec.scripts("ValidateService").is_empty());
    assert!(spec.warnings.is_empty(), "{:?}", spec.warnings);
}

#[test]
fn version_is_accepted_as_number_or_string() {
    // Parses minimal appspecs with each accepted spelling of the version; asserts success.
    for version in ["0.0", "\"0.0\"", "'0.0'", "0"] {
        let spec = parse_ok(&format!("version: {version}\nos: linux\n"));
        assert!(spec.files.is_empty() && spec.hooks.is_empty() && spec.permissions.is_empty());
    }
}

#[test]
fn json_text_is_yaml_too() {
    // Parses an appspec written as JSON (valid YAML, §1.1); asserts the hook is read.
    let spec = parse_ok(r#"{"version": 0.0, "os": "linux", "hooks": {"AfterInstall": [{"location": "a.sh"}]}}"#);
    assert_eq!(spec.scripts("AfterInstall")[0].location, "a.sh");
}

#[test]
fn empty_file_is_refused() {
    // Parses an empty file and a comment-only file; asserts the exact message.
    let expected = "appspec.yml: the file is empty; an appspec needs at least \"version: 0.0\" and \"os: linux\"";
    assert_eq!(parse_err(""), expected);
    assert_eq!(parse_err("# nothing here\n\n"), expected);
}

#[test]
fn missing_or_wrong_version_is_refused() {
    // Leaves version out, then sets it to 1.0 and to text; asserts each exact message.
    assert_eq!(parse_err("os: linux\n"), "appspec.yml line 1: missing \"version\"; write \"version: 0.0\"");
    assert_eq!(
        parse_err("os: linux\nversion: 1.0\n"),
        "appspec.yml line 2: version: unsupported version 1.0; the only appspec version is 0.0"
    );
    assert_eq!(
        parse_err("version: \"zero\"\nos: linux\n"),
        "appspec.yml line 1: version: unsupported version \"zero\"; the only appspec version is 0.0"
    );
}

#[test]
fn missing_or_wrong_os_is_refused() {
    // Leaves os out, sets windows, sets an unknown os; asserts each exact message.
    assert_eq!(parse_err("version: 0.0\n"), "appspec.yml line 1: missing \"os\"; write \"os: linux\"");
    assert_eq!(
        parse_err("version: 0.0\nos: windows\n"),
        "appspec.yml line 2: os: the appspec is for windows, but this host runs linux; \
         deploy it to windows hosts or set \"os: linux\""
    );
    assert_eq!(
        parse_err("version: 0.0\nos: Linux\n"),
        "appspec.yml line 2: os: unknown operating system \"Linux\"; this host runs linux"
    );
}

#[test]
fn unknown_file_exists_behavior_is_refused() {
    // Sets file_exists_behavior to a value CodeDeploy does not know; asserts the message.
    assert_eq!(
        parse_err("version: 0.0\nos: linux\nfile_exists_behavior: KEEP\n"),
        "appspec.yml line 3: file_exists_behavior: unknown value \"KEEP\"; use DISALLOW, OVERWRITE or RETAIN"
    );
    let spec = parse_ok("version: 0.0\nos: linux\nfile_exists_behavior: retain\n");
    assert_eq!(spec.file_exists_behavior, Some(FileExistsBehavior::Retain));
}

#[test]
fn hook_without_location_is_refused() {
    // Writes a hook entry with only a timeout, then one with an empty location; asserts
    // the messages name the list element and its line.
    let text = "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: ok.sh\n  AfterInstall:\n    - timeout: 30\n";
    assert_eq!(parse_err(text), "appspec.yml line 7: hooks.AfterInstall[0]: missing \"location\"");
    let text = "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: \"  \"\n";
    assert_eq!(parse_err(text), "appspec.yml line 5: hooks.AfterInstall[0].location: must not be empty");
    let text = "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - scripts/a.sh\n";
    assert_eq!(
        parse_err(text),
        "appspec.yml line 5: hooks.AfterInstall[0]: expected a mapping with \"location\", found \"scripts/a.sh\""
    );
}

#[test]
fn non_positive_or_non_numeric_timeout_is_refused() {
    // Sets timeouts of 0, -5, "0", "abc" and 1.5; asserts each exact message.
    let with_timeout = |timeout: &str| {
        format!("version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: {timeout}\n")
    };
    let prefix = "appspec.yml line 6: hooks.AfterInstall[0].timeout: ";
    assert_eq!(parse_err(&with_timeout("0")), format!("{prefix}must be a positive number of seconds, found 0"));
    assert_eq!(parse_err(&with_timeout("-5")), format!("{prefix}must be a positive number of seconds, found -5"));
    assert_eq!(parse_err(&with_timeout("\"0\"")), format!("{prefix}must be a positive number of seconds, found \"0\""));
    assert_eq!(parse_err(&with_timeout("abc")), format!("{prefix}must be a number of seconds, found \"abc\""));
    assert_eq!(parse_err(&with_timeout("1.5")), format!("{prefix}must be a whole number of seconds, found 1.5"));
}

#[test]
fn script_timeout_over_an_hour_is_refused() {
    // Sets timeouts of 3600 (the limit), 3601, "99999" and one too large for u64;
    // asserts the limit parses and the others name the field and CodeDeploy's maximum.
    let with_timeout = |timeout: &str| {
        format!("version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: {timeout}\n")
    };
    assert_eq!(parse_ok(&with_timeout("3600")).scripts("AfterInstall")[0].timeout, Duration::from_secs(3600));
    let prefix = "appspec.yml line 6: hooks.AfterInstall[0].timeout: ";
    let over = |seconds: &str| format!("{prefix}{seconds} s is more than the 3600 s CodeDeploy allows one script");
    assert_eq!(parse_err(&with_timeout("3601")), over("3601"));
    assert_eq!(parse_err(&with_timeout("\"99999\"")), over("99999"));
    assert_eq!(parse_err(&with_timeout("18446744073709551615")), over("18446744073709551615"));
    assert_eq!(
        parse_err(&with_timeout("\"99999999999999999999999\"")),
        format!("{prefix}\"99999999999999999999999\" seconds is too long")
    );
}

#[test]
fn files_entry_needs_source_and_absolute_destination() {
    // Writes files entries missing source, missing destination, with a relative
    // destination and with a source leaving the bundle; asserts each exact message.
    let with_files = |entry: &str| format!("version: 0.0\nos: linux\nfiles:\n  - {entry}\n");
    assert_eq!(parse_err(&with_files("destination: /srv")), "appspec.yml line 4: files[0]: missing \"source\"");
    assert_eq!(parse_err(&with_files("source: app")), "appspec.yml line 4: files[0]: missing \"destination\"");
    assert_eq!(
        parse_err(&with_files("{source: app, destination: srv/app}")),
        "appspec.yml line 4: files[0].destination: must be an absolute path, found \"srv/app\""
    );
    assert_eq!(
        parse_err(&with_files("{source: ../etc, destination: /srv}")),
        "appspec.yml line 4: files[0].source: \"../etc\" leaves the bundle; sources are paths inside the revision"
    );
}

fn with_permission(fields: &str) -> String {
    format!("version: 0.0\nos: linux\npermissions:\n  - object: /srv/app\n{fields}")
}

#[test]
fn modes_are_read_as_octal_digits() {
    // Writes modes as a bare number, quoted digits, two digits, a setuid mode and a bare
    // leading-zero value; asserts the bits, and the warning for the YAML 1.1 trap only.
    let mode_of = |mode: &str| {
        let spec = parse_ok(&with_permission(&format!("    mode: {mode}\n")));
        (spec.permissions[0].mode, spec.warnings)
    };
    assert_eq!(mode_of("644"), (Some(0o644), vec![]));
    assert_eq!(mode_of("\"0644\""), (Some(0o644), vec![]));
    assert_eq!(mode_of("'755'"), (Some(0o755), vec![]));
    assert_eq!(mode_of("12"), (Some(0o012), vec![]));
    assert_eq!(mode_of("4755"), (Some(0o4755), vec![]));
    let (mode, warnings) = mode_of("0644");
    assert_eq!(mode, Some(0o644));
    assert_eq!(
        warnings,
        vec![
            "appspec.yml line 5: permissions[0].mode: bare 0644 is read as the octal digits 0644, but the CodeDeploy \
             agent reads it as a YAML 1.1 octal number; write \"0644\" or 644 so both agree"
                .to_string()
        ]
    );
}

#[test]
fn bad_modes_are_refused() {
    // Writes a non-octal digit, five digits, a YAML 1.2 octal literal, a symbolic mode
    // and a list; asserts each exact message.
    let prefix = "appspec.yml line 5: permissions[0].mode: ";
    let refused = |mode: &str| parse_err(&with_permission(&format!("    mode: {mode}\n")));
    assert_eq!(
        refused("0958"),
        format!("{prefix}\"0958\" is not an octal mode: '9' is not a digit 0-7 (symbolic modes are not supported)")
    );
    assert_eq!(refused("77777"), format!("{prefix}\"77777\" has 5 digits; a mode has 1 to 4 octal digits"));
    assert_eq!(
        refused("0o644"),
        format!("{prefix}0o644 is not a mode; write the octal digits, for example \"644\" or \"0755\"")
    );
    assert_eq!(
        refused("u+x"),
        format!("{prefix}\"u+x\" is not an octal mode: 'u' is not a digit 0-7 (symbolic modes are not supported)")
    );
    assert_eq!(refused("[6, 4, 4]"), format!("{prefix}expected octal digits such as \"644\", found a list"));
}

#[test]
fn bad_acls_are_refused() {
    // Writes a base ACL entry, a bad permission letter, and a default entry on a
    // file-only permission; asserts each exact message.
    assert_eq!(
        parse_err(&with_permission("    acls:\n      - u:alice:rw\n      - u::rwx\n")),
        "appspec.yml line 7: permissions[0].acls[1]: \"u::rwx\" is a base entry; set owner, group and other \
         permissions with mode instead"
    );
    assert_eq!(
        parse_err(&with_permission("    acls: [\"g:web:rq\"]\n")),
        "appspec.yml line 5: permissions[0].acls[0]: \"g:web:rq\": 'q' is not a permission; use r, w, x, - or one octal digit"
    );
    assert_eq!(
        parse_err(&with_permission("    type: [file]\n    acls: [\"d:u:bob:rwx\"]\n")),
        "appspec.yml line 6: permissions[0].acls: default (d:) entries apply to directories only, but type excludes directory"
    );
}

#[test]
fn permission_fields_are_checked() {
    // Writes a permission without object, with a relative object, a bad type, a context
    // without type and one with a role; asserts each exact message.
    assert_eq!(
        parse_err("version: 0.0\nos: linux\npermissions:\n  - mode: 644\n"),
        "appspec.yml line 4: permissions[0]: missing \"object\""
    );
    assert_eq!(
        parse_err("version: 0.0\nos: linux\npermissions:\n  - object: srv\n"),
        "appspec.yml line 4: permissions[0].object: must be an absolute path, found \"srv\""
    );
    assert_eq!(
        parse_err(&with_permission("    type: [file, link]\n")),
        "appspec.yml line 5: permissions[0].type[1]: unknown object type \"link\"; use file or directory"
    );
    assert_eq!(
        parse_err(&with_permission("    context:\n      name: system_u\n")),
        "appspec.yml line 6: permissions[0].context: missing \"type\""
    );
    assert_eq!(
        parse_err(&with_permission("    context: {type: t, role: r}\n")),
        "appspec.yml line 5: permissions[0].context.role: SELinux roles are not supported; remove role"
    );
    let spec = parse_ok(&with_permission("    context: {name: u, type: t}\n"));
    assert_eq!(spec.permissions[0].context.as_ref().and_then(|context| context.user.as_deref()), Some("u"));
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    // Parses text with a bad indentation on line 3; asserts the message starts with the
    // file and line and says it is not YAML.
    let message = parse_err("version: 0.0\nos: linux\n  bad: [\n");
    assert!(message.starts_with("appspec.yml line 3: not valid YAML: "), "{message}");
}

#[test]
fn top_level_must_be_a_mapping() {
    // Parses a list document; asserts the message says what was found.
    assert_eq!(
        parse_err("- version\n- os\n"),
        "appspec.yml line 1: expected a mapping with version, os, files and hooks, found a list"
    );
}

#[test]
fn leniencies_of_the_agent_are_kept_with_warnings() {
    // Parses an absolute hook location, an unknown event, and timeouts summing over an
    // hour; asserts the scripts are kept and each oddity is a warning with its line.
    let text = "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: /scripts/a.sh\n      timeout: 3000\n    - location: b.sh\n      timeout: 1000\n  Install:\n    - location: c.sh\n";
    let spec = parse_ok(text);
    assert_eq!(spec.scripts("AfterInstall")[0].location, "scripts/a.sh");
    assert_eq!(
        spec.warnings,
        vec![
            "appspec.yml line 5: hooks.AfterInstall[0].location: \"/scripts/a.sh\" is read relative to the bundle root; \
             drop the leading '/'",
            "appspec.yml line 5: hooks.AfterInstall: script timeouts add up to 4000 s, more than the 3600 s CodeDeploy \
             allows one lifecycle event",
            "appspec.yml line 10: hooks.Install: \"Install\" is not a scriptable lifecycle event, so these scripts never run",
        ]
    );
}

#[test]
fn merge_keys_are_applied() {
    // Uses an anchor and a `<<:` merge for shared script settings; asserts the merged
    // timeout and runas reach both scripts.
    let text = "version: 0.0\nos: linux\nx-common: &common\n  timeout: 10\n  runas: app\nhooks:\n  AfterInstall:\n    - <<: *common\n      location: a.sh\n";
    let spec = parse_ok(text);
    assert_eq!(
        spec.scripts("AfterInstall")[0],
        HookScript { location: "a.sh".into(), timeout: Duration::from_secs(10), runas: Some("app".into()) }
    );
}

#[test]
fn too_large_files_are_refused() {
    // Parses a text one byte over the cap; asserts the size error.
    let text = format!("version: 0.0\nos: linux\n#{}", "x".repeat(APPSPEC_BYTES_MAX));
    assert!(parse_err(&text).starts_with("appspec.yml: the file is "));
}

/// YAML-ish fragments, so generated documents reach deep into the walker, not only the
/// tokenizer.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("version: 0.0\n".to_string()),
        Just("os: linux\n".to_string()),
        Just("hooks:\n".to_string()),
        Just("files:\n".to_string()),
        Just("permissions:\n".to_string()),
        Just("  AfterInstall:\n".to_string()),
        Just("    - location: a.sh\n".to_string()),
        Just("      timeout: ".to_string()),
        Just("  - object: /x\n".to_string()),
        Just("    mode: ".to_string()),
        Just("    acls: [".to_string()),
        Just("  - source: /\n    destination: /d\n".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\n".to_string()),
        "[ -~]{0,8}".prop_map(|text| text),
    ];
    proptest::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        // Feeds arbitrary bytes (as lossy UTF-8); asserts parse returns instead of
        // panicking, and any error names the file.
        let text = String::from_utf8_lossy(&bytes);
        if let Err(error) = parse("appspec.yml", &text) {
            prop_assert!(error.to_string().starts_with("appspec.yml"));
        }
    }

    #[test]
    fn yamlish_documents_never_panic(text in yamlish()) {
        // Feeds documents assembled from appspec fragments; asserts parse returns and
        // errors name the file.
        if let Err(error) = parse("appspec.yml", &text) {
            prop_assert!(error.to_string().starts_with("appspec.yml"));
        }
    }
}

#[test]
fn modes_behind_anchors_aliases_and_tags_keep_their_digits() {
    // Writes a mode with an anchor, reuses it through an alias, and writes one with an
    // explicit !!int tag; asserts all are read as the digits written.
    let spec = parse_ok(
        "version: 0.0\nos: linux\npermissions:\n  - object: /a\n    mode: &m 644\n  - object: /b\n    mode: *m\n  - object: /c\n    mode: !!int 755\n",
    );
    let modes: Vec<Option<u32>> = spec.permissions.iter().map(|permission| permission.mode).collect();
    assert_eq!(modes, [Some(0o644), Some(0o644), Some(0o755)]);
}
