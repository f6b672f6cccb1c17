use std::path::PathBuf;

use super::*;
use crate::session::SessionId;

fn fragments(files: &[(&str, &str)]) -> Vec<(PathBuf, crate::config::Fragment)> {
    files
        .iter()
        .map(|(path, text)| (PathBuf::from(path), toml::from_str(text).expect("toml")))
        .collect()
}

/// `[limits]` and `[admission]` of these files, merged, or the error's text.
fn load(files: &[(&str, &str)]) -> Result<(LimitsPolicy, Admission), String> {
    let fragments = fragments(files);
    merge(
        fragments
            .iter()
            .map(|(p, f)| (p.as_path(), &f.limits, &f.admission)),
    )
    .map_err(|e| e.to_string())
}

fn policy(text: &str) -> LimitsPolicy {
    load(&[("/etc/octo/octod.toml", text)]).expect("valid").0
}

#[track_caller]
fn check_error(text: &str, expected: &str) {
    assert_eq!(
        load(&[("/etc/octo/octod.toml", text)]).map(|_| ()),
        Err(expected.to_owned()),
        "{text}"
    );
}

const CONFIG: &str = r#"
[limits]
memory = "2G"
cpus = 1
pids = 512

[limits.roles.admin]
memory = "4G"
cpus = 2

[limits.templates.research-assistant]
cpus = 1.5
pids = "unlimited"

[limits.users.alice]
memory = "8G"
"#;

fn limits(memory_gib: Option<u64>, cpu_centis: Option<u32>, pids: Option<u32>) -> Limits {
    Limits {
        memory_bytes: memory_gib.map(|g| g << 30),
        cpu_centis,
        pids,
    }
}

#[test]
fn the_most_specific_level_wins_key_by_key() {
    let p = policy(CONFIG);
    // Defaults only.
    assert_eq!(
        p.resolve("bob", Role::User, "coding-copilot"),
        limits(Some(2), Some(100), Some(512))
    );
    // The role's memory and CPU; the default pids.
    assert_eq!(
        p.resolve("root", Role::Admin, "coding-copilot"),
        limits(Some(4), Some(200), Some(512))
    );
    // The template beats the role for CPU and lifts the pids limit; the role's memory stays.
    assert_eq!(
        p.resolve("root", Role::Admin, "research-assistant"),
        limits(Some(4), Some(150), None)
    );
    // The user beats all for memory; the rest falls through.
    assert_eq!(
        p.resolve("alice", Role::User, "research-assistant"),
        limits(Some(8), Some(150), None)
    );
    // No configuration: no limits.
    assert_eq!(
        LimitsPolicy::default().resolve("alice", Role::User, "x"),
        Limits::default()
    );
}

#[test]
fn later_files_win_key_by_key() {
    let (p, _) = load(&[
        ("/etc/octo/octod.toml", CONFIG),
        (
            "/etc/octo/octod.d/50-alice.toml",
            "[limits.users.alice]\ncpus = 3\n[limits]\nmemory = \"1G\"\n",
        ),
    ])
    .expect("valid");
    assert_eq!(
        p.resolve("alice", Role::User, "coding-copilot"),
        limits(Some(8), Some(300), Some(512))
    );
    assert_eq!(
        p.resolve("bob", Role::User, "coding-copilot"),
        limits(Some(1), Some(100), Some(512))
    );
    assert_eq!(
        p.path_of("limits.memory"),
        "/etc/octo/octod.d/50-alice.toml"
    );
    assert_eq!(p.path_of("limits.pids"), "/etc/octo/octod.toml");
}

#[test]
fn sizes_and_cpus_parse() {
    let p = policy("[limits]\nmemory = \"1.5G\"\ncpus = 0.25\npids = 32\n");
    assert_eq!(
        p.resolve("a", Role::User, "t"),
        Limits {
            memory_bytes: Some(3 << 29),
            cpu_centis: Some(25),
            pids: Some(32),
        }
    );
    for (text, bytes) in [
        ("\"512M\"", 512 << 20),
        ("\"512MiB\"", 512 << 20),
        ("\"2g\"", 2 << 30),
        ("\"1T\"", 1 << 40),
        ("134217728", 128 << 20),
    ] {
        let p = policy(&format!("[limits]\nmemory = {text}\n"));
        assert_eq!(p.default.memory, Some(Setting::Limit(bytes)), "{text}");
    }
}

#[test]
fn bad_values_name_the_file_and_key() {
    check_error(
        "[limits]\nmemory = \"lots\"\n",
        "/etc/octo/octod.toml: limits.memory: \"lots\" is not a size: use a number with K, M, G or T, or \"unlimited\"",
    );
    check_error(
        "[limits]\nmemory = \"2X\"\n",
        "/etc/octo/octod.toml: limits.memory: \"2X\" is not a size: use a number with K, M, G or T, or \"unlimited\"",
    );
    check_error(
        "[limits]\nmemory = \"10M\"\n",
        "/etc/octo/octod.toml: limits.memory: 10 MiB is too little to run a session: at least 64 MiB",
    );
    check_error(
        "[limits]\nmemory = -1\n",
        "/etc/octo/octod.toml: limits.memory: -1 is not a size, or \"unlimited\"",
    );
    check_error(
        "[limits.templates.research-assistant]\ncpus = 0\n",
        "/etc/octo/octod.toml: limits.templates.research-assistant.cpus: 0 is not a number of CPUs: use 0.01 or more, in hundredths (1.5), or \"unlimited\"",
    );
    check_error(
        "[limits]\ncpus = 1.005\n",
        "/etc/octo/octod.toml: limits.cpus: 1.005 is not a number of CPUs: use 0.01 or more, in hundredths (1.5), or \"unlimited\"",
    );
    check_error(
        "[limits]\ncpus = \"two\"\n",
        "/etc/octo/octod.toml: limits.cpus: \"two\" is not a number of CPUs: use a number such as 1.5, or \"unlimited\"",
    );
    check_error(
        "[limits.users.alice]\npids = 5\n",
        "/etc/octo/octod.toml: limits.users.alice.pids: 5 is not a task limit: use 32 to 4294967295, or \"unlimited\"",
    );
    check_error(
        "[limits.roles.owner]\npids = 100\n",
        "/etc/octo/octod.toml: limits.roles.owner: no role \"owner\": the roles are \"user\" and \"admin\"",
    );
    check_error(
        "[limits.users.\"a b\"]\npids = 100\n",
        "/etc/octo/octod.toml: limits.users.a b: \"a b\" is not a user name",
    );
    check_error(
        "[admission]\nmemory_margin = \"some\"\n",
        "/etc/octo/octod.toml: admission.memory_margin: \"some\" is not a size: use a number with K, M, G or T, or \"off\"",
    );
    check_error(
        "[admission]\nmake_room_idle_minutes = 20000\n",
        "/etc/octo/octod.toml: admission.make_room_idle_minutes: must be 0–10080 (a week)",
    );
}

#[test]
fn unknown_keys_are_refused_by_the_file_format() {
    let err = crate::config::merge(&fragments(&[])).map(|_| ());
    assert!(err.is_ok());
    let parsed: Result<crate::config::Fragment, _> =
        toml::from_str("[limits.users.alice]\nmemroy = \"2G\"\n");
    let message = parsed.expect_err("unknown key").to_string();
    assert!(message.contains("unknown field `memroy`"), "{message}");
}

#[test]
fn limits_beyond_the_host_are_errors_naming_the_key() {
    let host = HostFacts {
        memory_total: Some(16 << 30),
        cpus: Some(4),
    };
    assert_eq!(policy(CONFIG).check_host(&host), Ok(()));
    let (p, _) = load(&[
        ("/etc/octo/octod.toml", CONFIG),
        (
            "/etc/octo/octod.d/big.toml",
            "[limits.users.alice]\nmemory = \"32G\"\n",
        ),
    ])
    .expect("valid");
    assert_eq!(
        p.check_host(&host).map_err(|e| e.to_string()),
        Err("/etc/octo/octod.d/big.toml: limits.users.alice.memory: 32 GiB is more than this host's memory (16 GiB)".to_owned())
    );
    let p = policy("[limits.templates.x]\ncpus = 6\n");
    assert_eq!(
        p.check_host(&host).map_err(|e| e.to_string()),
        Err(
            "/etc/octo/octod.toml: limits.templates.x.cpus: 6 CPUs is more than this host has (4)"
                .to_owned()
        )
    );
    // Unknown facts check nothing.
    assert_eq!(p.check_host(&HostFacts::default()), Ok(()));
}

#[test]
fn overrides_for_nobody_are_warnings() {
    let p = policy(CONFIG);
    let users = ["bob".to_owned()];
    let templates = ["coding-copilot".to_owned()];
    assert_eq!(
        p.warnings(Some(&users), Some(&templates)),
        [
            "limits.users.alice (/etc/octo/octod.toml): there is no user \"alice\"; the limits apply if such an account is made",
            "limits.templates.research-assistant (/etc/octo/octod.toml): there is no template \"research-assistant\" in the templates directory",
        ]
    );
    assert!(p.warnings(None, None).is_empty());
    assert!(p.uses("memory") && p.uses("cpu") && p.uses("pids"));
    assert!(!policy("[limits]\npids = \"unlimited\"\n").uses("pids"));
}

#[test]
fn show_prints_each_key_with_its_file() {
    let (p, a) = load(&[
        ("/etc/octo/octod.toml", CONFIG),
        (
            "/etc/octo/octod.d/adm.toml",
            "[admission]\nmax_running = 40\nstop_idle_to_make_room = true\n",
        ),
    ])
    .expect("valid");
    let text = show(&p, &a);
    let expected = r#"
[limits]
memory = "2G"                                            # /etc/octo/octod.toml
cpus = 1                                                 # /etc/octo/octod.toml
pids = 512                                               # /etc/octo/octod.toml
[limits.roles.admin]
memory = "4G"                                            # /etc/octo/octod.toml
cpus = 2                                                 # /etc/octo/octod.toml
[limits.templates.research-assistant]
cpus = 1.5                                               # /etc/octo/octod.toml
pids = "unlimited"                                       # /etc/octo/octod.toml
[limits.users.alice]
memory = "8G"                                            # /etc/octo/octod.toml

[admission]
max_running = 40                                         # /etc/octo/octod.d/adm.toml
max_running_per_user = 0                                 # default
memory_margin = "256 MiB"                                # default
stop_idle_to_make_room = true                            # /etc/octo/octod.d/adm.toml
make_room_idle_minutes = 10                              # default
state_free_floor = "512 MiB"                             # default
"#;
    assert_eq!(text, expected);
}

#[test]
fn admission_settings() {
    let (_, a) = load(&[]).expect("valid");
    assert_eq!(a, Admission::default());
    let (_, a) = load(&[(
        "/etc/octo/octod.toml",
        "[admission]\nmax_running = 0\nmax_running_per_user = 2\nmemory_margin = \"off\"\nstop_idle_to_make_room = true\nmake_room_idle_minutes = 0\n",
    )])
    .expect("valid");
    assert_eq!(a.max_running, None);
    assert_eq!(a.max_running_per_user, Some(2));
    assert_eq!(a.memory_margin, None);
    assert_eq!(a.make_room_after, Some(Duration::ZERO));
}

fn spec(id: &str, owner: &str, memory: Option<u64>, desired: DesiredState) -> SessionSpec {
    SessionSpec {
        id: id.parse::<SessionId>().expect("id"),
        owner: owner.into(),
        template: "coding-copilot".into(),
        image: "localhost/octo-session:latest".into(),
        limits: Limits {
            memory_bytes: memory,
            ..Limits::default()
        },
        desired,
    }
}

fn rules(host: u32, user: u32, margin: Option<u64>) -> AdmitCheck {
    AdmitCheck {
        rules: Admission {
            max_running: (host > 0).then_some(host),
            max_running_per_user: (user > 0).then_some(user),
            memory_margin: margin,
            ..Admission::default()
        },
        available_memory: Some(8 << 30),
        state_free: None,
    }
}

#[test]
fn admission_counts_sessions_that_hold_a_slot() {
    use DesiredState::{Idle, Running, Stopped};
    let others = [
        (spec("a1", "alice", None, Running), SessionState::Running),
        (spec("a2", "alice", None, Running), SessionState::Starting),
        (
            spec("a3", "alice", None, Running),
            SessionState::Failed("x".into()),
        ),
        (spec("a4", "alice", None, Idle), SessionState::Stopped),
        (spec("a5", "alice", None, Stopped), SessionState::Stopped),
        (spec("b1", "bob", None, Running), SessionState::Running),
    ];
    let others = || others.iter().map(|(s, st)| (s, st));
    let candidate = spec("c1", "carol", None, Running);
    // 3 hold a slot (a1, a2, b1).
    assert_eq!(rules(4, 0, None).check(&candidate, others()), Ok(()));
    assert_eq!(
        rules(3, 0, None).check(&candidate, others()),
        Err(Refusal::HostFull { running: 3, max: 3 })
    );
    assert_eq!(
        rules(3, 0, None)
            .check(&candidate, others())
            .expect_err("full")
            .to_string(),
        "the host is full: 3 of 3 sessions running; stop one or ask an administrator"
    );
    let alice = spec("a9", "alice", None, Running);
    let refused = rules(0, 2, None).check(&alice, others());
    assert_eq!(
        refused,
        Err(Refusal::UserFull {
            owner: "alice".into(),
            running: 2,
            max: 2
        })
    );
    assert_eq!(
        refused.expect_err("full").to_string(),
        "alice has 2 of 2 sessions running, the most allowed; stop one first"
    );
    // A session already holding a slot is not counted against itself (a resume of a1).
    let a1 = &others().next().expect("a1").0.clone();
    assert_eq!(rules(0, 2, None).check(a1, others()), Ok(()));
}

#[test]
fn the_memory_floor_counts_what_starting_sessions_will_take() {
    use DesiredState::Running;
    let others = [
        (
            spec("a1", "alice", Some(4 << 30), Running),
            SessionState::Running,
        ),
        (
            spec("a2", "alice", Some(2 << 30), Running),
            SessionState::Starting,
        ),
    ];
    let others = || others.iter().map(|(s, st)| (s, st));
    // 8 GiB available, 2 GiB of it promised to a2, which is starting.
    let fits = spec("c1", "carol", Some(5 << 30), Running);
    assert_eq!(rules(0, 0, Some(512 << 20)).check(&fits, others()), Ok(()));
    let too_big = spec("c2", "carol", Some(6 << 30), Running);
    let refused = rules(0, 0, Some(512 << 20)).check(&too_big, others());
    assert_eq!(
        refused,
        Err(Refusal::LowMemory {
            available: 6 << 30,
            limit: 6 << 30,
            margin: 512 << 20
        })
    );
    assert_eq!(
        refused.expect_err("low").to_string(),
        "the host is short of memory: 6 GiB available, this session may use 6 GiB and 512 MiB is kept free; stop a session or ask an administrator"
    );
    // Without a floor, or without knowing the memory, nothing is refused.
    assert_eq!(rules(0, 0, None).check(&too_big, others()), Ok(()));
    let mut unknown = rules(0, 0, Some(512 << 20));
    unknown.available_memory = None;
    assert_eq!(unknown.check(&too_big, others()), Ok(()));
}

#[test]
fn meminfo_fields_are_bytes() {
    let text =
        "MemTotal:       16318580 kB\nMemFree:         1000 kB\nMemAvailable:    8000000 kB\n";
    assert_eq!(meminfo_field(text, "MemTotal"), Some(16_318_580 * 1024));
    assert_eq!(meminfo_field(text, "MemAvailable"), Some(8_000_000 * 1024));
    assert_eq!(meminfo_field(text, "Mem"), None);
    assert_eq!(size(3 << 29), "1.5 GiB");
    assert_eq!(cpus_text(150), "1.5");
    assert_eq!(cpus_text(200), "2");
    assert_eq!(cpus_text(5), "0.05");
}

/// The units of sessions whose limits come from `[limits]`, resolved for each owner, role
/// and template: the whole container unit for one, the limit lines for each.
#[test]
fn units_carry_the_configured_limits_per_role_template_and_user() {
    use crate::identity::Role::{Admin, User};
    use crate::render::{Controllers, RenderConfig, render};
    const CONFIG: &str = r#"
[limits]
memory = "2G"
cpus = 1
pids = 512
[limits.roles.admin]
memory = "4G"
[limits.templates.research-assistant]
cpus = 2.5
pids = "unlimited"
[limits.users.alice]
memory = "1536M"
"#;
    let policy = policy(CONFIG);
    let config = RenderConfig {
        controllers: Controllers::ALL,
        ..RenderConfig::new("/usr/share/octo/templates")
    };
    let session = |owner: &str, role, template: &str| SessionSpec {
        owner: owner.into(),
        template: template.into(),
        limits: policy.resolve(owner, role, template),
        ..spec("ab12", "alice", None, DesiredState::Running)
    };
    // alice (a user with her own memory) on the research template (its CPU, no pids limit).
    let unit = render(&session("alice", User, "research-assistant"), &config)
        .expect("renders")
        .container
        .contents;
    assert_eq!(
        unit,
        r"[Unit]
Description=Octo session ab12 of alice
Requires=octo-ab12.socket
After=octo-ab12.socket

[Container]
Image=localhost/octo-session:latest
ContainerName=octo-ab12
Pull=never
UserNS=auto
Network=pasta:--no-map-gw,-t,none,-u,none,-T,none,-U,none
Volume=octo-ab12.volume:/home/dev:U
Volume=/usr/share/octo/templates/research-assistant:/etc/octo/template:ro
Secret=octo-ab12-token,type=mount,target=/run/secrets/octo-token,mode=0400,uid=1000,gid=1000
Environment=OCTO_SESSION_ID=ab12
Label=octo.session=ab12
Label=octo.owner=alice
HealthCmd=/usr/local/bin/octo-healthcheck
HealthInterval=2s
HealthStartPeriod=60s
HealthRetries=3
HealthTimeout=5s
Notify=healthy
DropCapability=ALL
NoNewPrivileges=true
PodmanArgs=--memory=1610612736 --cpus=2.5

[Service]
TimeoutStartSec=120s
Restart=on-failure

[Install]
WantedBy=default.target
",
    );
    let limit_lines = |spec: &SessionSpec| -> Vec<String> {
        render(spec, &config)
            .expect("renders")
            .container
            .contents
            .lines()
            .filter(|l| l.starts_with("PidsLimit=") || l.starts_with("PodmanArgs="))
            .map(str::to_owned)
            .collect()
    };
    for (owner, role, template, expected) in [
        // The defaults.
        (
            "bob",
            User,
            "coding-copilot",
            ["PidsLimit=512", "PodmanArgs=--memory=2147483648 --cpus=1"].as_slice(),
        ),
        // The admin role's memory.
        (
            "root",
            Admin,
            "coding-copilot",
            &["PidsLimit=512", "PodmanArgs=--memory=4294967296 --cpus=1"],
        ),
        // The role's memory, the template's CPU and no pids limit.
        (
            "root",
            Admin,
            "research-assistant",
            &["PodmanArgs=--memory=4294967296 --cpus=2.5"],
        ),
        // The user's memory beats the role's.
        (
            "alice",
            Admin,
            "coding-copilot",
            &["PidsLimit=512", "PodmanArgs=--memory=1610612736 --cpus=1"],
        ),
    ] {
        assert_eq!(
            limit_lines(&session(owner, role, template)),
            expected,
            "{owner} ({role:?}) on {template}"
        );
    }
    // Where no controller is delegated the same sessions get no limit lines, and warnings.
    let none = render(
        &session("bob", User, "coding-copilot"),
        &RenderConfig {
            controllers: Controllers::NONE,
            ..config.clone()
        },
    )
    .expect("renders");
    assert!(!none.container.contents.contains("PidsLimit="));
    assert!(!none.container.contents.contains("PodmanArgs="));
    assert_eq!(none.unenforced.len(), 3);
}

#[test]
fn the_disk_quota_is_the_users_then_the_roles_then_the_default() {
    let p = policy(
        "[limits]\ndisk = \"10G\"\ndisk_warn_percent = 80\ndisk_measure_minutes = 5\n\
         [limits.roles.admin]\ndisk = \"50G\"\n\
         [limits.users.alice]\ndisk = \"unlimited\"\n\
         [limits.users.bob]\ndisk = \"2G\"\n",
    );
    assert_eq!(p.disk_quota("carol", Role::User), Some(10 << 30));
    assert_eq!(p.disk_quota("carol", Role::Admin), Some(50 << 30));
    assert_eq!(p.disk_quota("alice", Role::Admin), None);
    assert_eq!(p.disk_quota("bob", Role::Admin), Some(2 << 30));
    assert_eq!(
        p.disk,
        DiskPolicy {
            warn_percent: 80,
            measure_every: Duration::from_secs(300),
        }
    );
    // None set: no quota, the defaults.
    let p = policy("[limits]\nmemory = \"1G\"\n");
    assert_eq!(p.disk_quota("carol", Role::User), None);
    assert_eq!(p.disk, DiskPolicy::default());
}

#[test]
fn the_snapshot_quota_is_the_users_then_the_roles_then_the_default() {
    let p = policy(
        "[limits]\nsnapshots = \"20G\"\ndisk = \"10G\"\n\
         [limits.roles.admin]\nsnapshots = \"unlimited\"\n\
         [limits.users.bob]\nsnapshots = \"1G\"\n",
    );
    assert_eq!(p.snapshot_quota("carol", Role::User), Some(20 << 30));
    assert_eq!(p.snapshot_quota("carol", Role::Admin), None);
    assert_eq!(p.snapshot_quota("bob", Role::Admin), Some(1 << 30));
    // Apart from the homes' quota.
    assert_eq!(p.disk_quota("carol", Role::User), Some(10 << 30));
    assert_eq!(
        policy("[limits]\n").snapshot_quota("carol", Role::User),
        None
    );
    check_error(
        "[limits]\nsnapshots = \"lots\"\n",
        "/etc/octo/octod.toml: limits.snapshots: \"lots\" is not a size: use a number with K, M, G or T, or \"unlimited\"",
    );
    check_error(
        "[limits.templates.research-assistant]\nsnapshots = \"1G\"\n",
        "/etc/octo/octod.toml: limits.templates.research-assistant.snapshots: the snapshot quota is a user's, for all their sessions together: set it in [limits], a role's or a user's table",
    );
}

#[test]
fn bad_disk_settings_name_the_file_and_key() {
    check_error(
        "[limits]\ndisk = \"lots\"\n",
        "/etc/octo/octod.toml: limits.disk: \"lots\" is not a size: use a number with K, M, G or T, or \"unlimited\"",
    );
    check_error(
        "[limits.users.alice]\ndisk = \"100K\"\n",
        "/etc/octo/octod.toml: limits.users.alice.disk: 100 KiB is too little for a home: at least 1 MiB",
    );
    check_error(
        "[limits.templates.research-assistant]\ndisk = \"1G\"\n",
        "/etc/octo/octod.toml: limits.templates.research-assistant.disk: the disk quota is a user's, for all their sessions together: set it in [limits], a role's or a user's table",
    );
    check_error(
        "[limits]\ndisk_warn_percent = 0\n",
        "/etc/octo/octod.toml: limits.disk_warn_percent: must be 1–100 (percent of the quota)",
    );
    check_error(
        "[limits]\ndisk_warn_percent = 101\n",
        "/etc/octo/octod.toml: limits.disk_warn_percent: must be 1–100 (percent of the quota)",
    );
    check_error(
        "[limits]\ndisk_measure_minutes = 0\n",
        "/etc/octo/octod.toml: limits.disk_measure_minutes: must be 1–1440 (a day)",
    );
    check_error(
        "[admission]\nstate_free_floor = \"plenty\"\n",
        "/etc/octo/octod.toml: admission.state_free_floor: \"plenty\" is not a size: use a number with K, M, G or T, or \"off\"",
    );
}

#[test]
fn the_state_free_floor_refuses_every_start_below_it() {
    let (_, a) = load(&[]).expect("valid");
    assert_eq!(a.state_free_floor, Some(DEFAULT_STATE_FREE_FLOOR));
    let (_, a) = load(&[(
        "/etc/octo/octod.toml",
        "[admission]\nstate_free_floor = \"off\"\n",
    )])
    .expect("valid");
    assert_eq!(a.state_free_floor, None);
    let (_, a) = load(&[(
        "/etc/octo/octod.toml",
        "[admission]\nstate_free_floor = \"2G\"\n",
    )])
    .expect("valid");
    assert_eq!(a.state_free_floor, Some(2 << 30));

    let candidate = spec("new", "alice", None, DesiredState::Running);
    let check = |free: Option<u64>| {
        AdmitCheck {
            rules: a.clone(),
            available_memory: None,
            state_free: free,
        }
        .check(&candidate, [])
    };
    assert_eq!(
        check(Some(1 << 30)),
        Err(Refusal::LowStateDisk {
            free: 1 << 30,
            floor: 2 << 30
        })
    );
    assert_eq!(
        check(Some(1 << 30)).expect_err("refused").to_string(),
        "the host is short of disk space for Octo's own state: 1 GiB free where octod keeps it, 2 GiB is kept free; ask an administrator to free space"
    );
    assert_eq!(check(Some(2 << 30)), Ok(()));
    // Unknown (not readable): not refused.
    assert_eq!(check(None), Ok(()));
}

#[test]
fn free_space_reads_the_file_system() {
    let free = free_space(Path::new("/")).expect("statvfs of /");
    assert!(free > 0);
    assert_eq!(free_space(Path::new("/no/such/dir")), None);
}
