//! Typed Podman Quadlet units (`.container`, `.volume`) and the plain systemd `.socket` unit
//! that activates a container: validation, rendering and a parser for tests.
//!
//! Each section is a struct with exactly the keys Octo uses, documented from
//! podman-systemd.unit(5). [`ContainerUnit::render`] and [`VolumeUnit::render`] validate every
//! value first and return the unit text or an [`Error`]; nothing half-written ever comes out.
//! How a value is quoted depends on how Quadlet and systemd read that key (see the `value`
//! module): `%` is always written `%%`, `$` is written `$$` where the value ends up in
//! `ExecStart=`, word-list keys are quoted with systemd's rules, and values that cannot be
//! carried at all (newlines and other control characters, surrounding whitespace in raw
//! values, a trailing backslash) are refused.
//!
//! [`UnitFile::parse`] reads a unit back (sections → keys → values, encoding undone); it
//! exists for tests and diagnostics.
//!
//! The crate knows nothing of sessions: `octod::render` maps a session spec onto these types.

mod container;
mod error;
mod parse;
mod socket;
mod systemd;
mod value;
mod volume;
mod writer;

pub use container::{
    ContainerSection, ContainerUnit, EnvVar, HealthCheck, Label, Network, PidsLimit, PublishPort,
    PullPolicy, Secret, SecretTarget, UserNs, VolumeMount, VolumeSource,
};
pub use error::{Error, ParseError, Problem};
pub use parse::{ParsedSection, UnitFile};
pub use socket::{ListenStream, SocketSection, SocketUnit};
pub use systemd::{InstallSection, Restart, ServiceSection, UnitSection};
pub use volume::{VolumeSection, VolumeUnit};

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use super::*;

    /// Renders and compares with the expected text (leading newline of `expected` ignored),
    /// then parses the text back to prove it is well-formed.
    #[track_caller]
    fn check(rendered: Result<String, Error>, expected: &str) {
        let expected = expected.strip_prefix('\n').unwrap_or(expected);
        let actual = rendered.expect("renders");
        assert!(
            actual == expected,
            "rendered unit differs\n--- expected\n{expected}--- actual\n{actual}---"
        );
        UnitFile::parse(&actual).expect("rendered text parses");
    }

    #[track_caller]
    fn check_error(rendered: Result<String, Error>, key: &str, problem: Problem) {
        let error = rendered.expect_err("refused");
        assert_eq!((error.key, error.problem), (key, problem), "{error}");
    }

    fn localhost() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    fn full_container() -> ContainerUnit {
        ContainerUnit {
            unit: UnitSection {
                description: Some("Octo session ab12".into()),
                requires: vec!["octo-ab12.socket".into()],
                after: vec!["octo-ab12.socket".into()],
            },
            container: ContainerSection {
                container_name: Some("octo-ab12".into()),
                pull: Some(PullPolicy::Never),
                user_ns: Some(UserNs::Auto),
                network: Some(Network::Pasta(vec![
                    "--no-map-gw".into(),
                    "-T".into(),
                    "none".into(),
                ])),
                publish_ports: vec![PublishPort {
                    host_ip: localhost(),
                    host_port: 40001,
                    container_port: 41820,
                }],
                volumes: vec![
                    VolumeMount {
                        source: VolumeSource::Unit("octo-ab12.volume".into()),
                        target: "/home/dev".into(),
                        read_only: false,
                        chown: false,
                    },
                    VolumeMount {
                        source: VolumeSource::HostPath("/usr/share/octo/templates/x".into()),
                        target: "/etc/octo/template".into(),
                        read_only: true,
                        chown: false,
                    },
                ],
                secrets: vec![
                    Secret {
                        name: "octo-ab12-token".into(),
                        target: SecretTarget::File {
                            path: "/run/secrets/octo-token".into(),
                            mode: 0o400,
                            uid: 1000,
                            gid: 1000,
                        },
                    },
                    Secret {
                        name: "octo-llm".into(),
                        target: SecretTarget::Env("OCTO_LLM_CONFIG".into()),
                    },
                ],
                environment: vec![EnvVar {
                    name: "OCTO_SESSION_ID".into(),
                    value: "ab12".into(),
                }],
                labels: vec![Label::new("octo.session", "ab12")],
                health: Some(HealthCheck {
                    cmd: "/usr/local/bin/octo-healthcheck".into(),
                    interval: Some(Duration::from_secs(2)),
                    start_period: Some(Duration::from_secs(60)),
                    retries: Some(3),
                    timeout: Some(Duration::from_millis(2500)),
                    notify_healthy: true,
                }),
                drop_capabilities: vec!["ALL".into()],
                add_capabilities: vec!["CHOWN".into(), "SETUID".into()],
                no_new_privileges: true,
                pids_limit: Some(PidsLimit::Max(512)),
                podman_args: vec!["--memory=1073741824".into(), "--cpus=1.5".into()],
                ..ContainerSection::new("localhost/octo-session:latest")
            },
            service: ServiceSection {
                timeout_start: Some(Duration::from_secs(120)),
                restart: Some(Restart::OnFailure),
            },
            install: Some(InstallSection {
                wanted_by: vec!["default.target".into()],
            }),
        }
    }

    #[test]
    fn container_every_key() {
        check(
            full_container().render(),
            r"
[Unit]
Description=Octo session ab12
Requires=octo-ab12.socket
After=octo-ab12.socket

[Container]
Image=localhost/octo-session:latest
ContainerName=octo-ab12
Pull=never
UserNS=auto
Network=pasta:--no-map-gw,-T,none
PublishPort=127.0.0.1:40001:41820
Volume=octo-ab12.volume:/home/dev
Volume=/usr/share/octo/templates/x:/etc/octo/template:ro
Secret=octo-ab12-token,type=mount,target=/run/secrets/octo-token,mode=0400,uid=1000,gid=1000
Secret=octo-llm,type=env,target=OCTO_LLM_CONFIG
Environment=OCTO_SESSION_ID=ab12
Label=octo.session=ab12
HealthCmd=/usr/local/bin/octo-healthcheck
HealthInterval=2s
HealthStartPeriod=60s
HealthRetries=3
HealthTimeout=2500ms
Notify=healthy
DropCapability=ALL
AddCapability=CHOWN SETUID
NoNewPrivileges=true
PidsLimit=512
PodmanArgs=--memory=1073741824 --cpus=1.5

[Service]
TimeoutStartSec=120s
Restart=on-failure

[Install]
WantedBy=default.target
",
        );
    }

    #[test]
    fn container_minimal_leaves_optional_sections_out() {
        let unit = ContainerUnit {
            unit: UnitSection::default(),
            container: ContainerSection::new("localhost/busybox:latest"),
            service: ServiceSection::default(),
            install: None,
        };
        check(
            unit.render(),
            r"
[Container]
Image=localhost/busybox:latest
",
        );
    }

    #[test]
    fn quoting_and_escaping() {
        let mut unit = full_container();
        unit.unit = UnitSection {
            description: Some("50% of $HOME".into()),
            ..UnitSection::default()
        };
        let c = &mut unit.container;
        c.network = None;
        c.publish_ports = vec![PublishPort {
            host_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            host_port: 1,
            container_port: 2,
        }];
        c.volumes.truncate(0);
        c.secrets.truncate(0);
        c.environment = vec![EnvVar {
            name: "GREETING".into(),
            value: r#"say "hi" \ 100% $USER"#.into(),
        }];
        c.labels = vec![Label::new("octo.owner", "Jane O'Neil")];
        c.health = Some(HealthCheck {
            cmd: r#"wget -q -O - http://127.0.0.1:41820/ | grep -q "ok" || test $? = 7"#.into(),
            interval: None,
            start_period: None,
            retries: None,
            timeout: None,
            notify_healthy: false,
        });
        c.drop_capabilities.truncate(0);
        c.add_capabilities.truncate(0);
        c.no_new_privileges = false;
        c.pids_limit = Some(PidsLimit::Unlimited);
        c.podman_args = vec!["--annotation=a b".into()];
        unit.service = ServiceSection::default();
        unit.install = None;
        check(
            unit.render(),
            r#"
[Unit]
Description=50%% of $HOME

[Container]
Image=localhost/octo-session:latest
ContainerName=octo-ab12
Pull=never
UserNS=auto
PublishPort=[::1]:1:2
Environment="GREETING=say \"hi\" \\ 100%% $$USER"
Label="octo.owner=Jane O'Neil"
HealthCmd=wget -q -O - http://127.0.0.1:41820/ | grep -q "ok" || test $$? = 7
PidsLimit=-1
PodmanArgs="--annotation=a b"
"#,
        );
    }

    #[test]
    fn parse_undoes_the_encoding() {
        let mut unit = full_container();
        unit.container.labels = vec![
            Label::new("octo.owner", r#"a "b" \c 100% $d"#),
            Label::new("octo.session", "ab12"),
        ];
        unit.container.health.as_mut().expect("health").cmd = "test 100% -eq $X".into();
        let text = unit.render().expect("renders");
        let parsed = UnitFile::parse(&text).expect("parses");
        assert_eq!(
            parsed.values("Container", "Label").expect("decodes"),
            [r#"octo.owner=a "b" \c 100% $d"#, "octo.session=ab12"]
        );
        assert_eq!(
            parsed.values("Container", "HealthCmd").expect("decodes"),
            ["test 100% -eq $X"]
        );
        assert_eq!(
            parsed
                .values("Container", "AddCapability")
                .expect("decodes"),
            ["CHOWN", "SETUID"]
        );
        assert_eq!(
            parsed.values("Install", "WantedBy").expect("decodes"),
            ["default.target"]
        );
        assert_eq!(
            parsed.section_names(),
            ["Unit", "Container", "Service", "Install"]
        );
    }

    fn socket() -> SocketUnit {
        SocketUnit {
            unit: UnitSection {
                description: Some("Octo session ab12: its gateway's socket".into()),
                ..UnitSection::default()
            },
            socket: SocketSection {
                listen_stream: ListenStream::RuntimeDir("octo/sessions/ab12.sock".into()),
                socket_mode: Some(0o600),
                directory_mode: Some(0o700),
                remove_on_stop: true,
                service: Some("octo-ab12.service".into()),
            },
            install: Some(InstallSection {
                wanted_by: vec!["sockets.target".into()],
            }),
        }
    }

    #[test]
    fn socket_unit() {
        check(
            socket().render(),
            r"
[Unit]
Description=Octo session ab12: its gateway's socket

[Socket]
ListenStream=%t/octo/sessions/ab12.sock
SocketMode=0600
DirectoryMode=0700
RemoveOnStop=yes
Service=octo-ab12.service

[Install]
WantedBy=sockets.target
",
        );
        let mut odd = socket();
        odd.socket.listen_stream = ListenStream::RuntimeDir("100%/x.sock".into());
        odd.install = None;
        let text = odd.render().expect("renders");
        assert!(text.contains("\nListenStream=%t/100%%/x.sock\n"), "{text}");
        for bad in ["/abs.sock", "a/../b", "a//b", "", "a b"] {
            let mut unit = socket();
            unit.socket.listen_stream = ListenStream::RuntimeDir(bad.into());
            let error = unit.render().expect_err(bad);
            assert_eq!(error.key, "ListenStream", "{bad}: {error}");
        }
        let mut unit = socket();
        unit.socket.service = Some("not a unit".into());
        check_error(unit.render(), "Service", Problem::BadUnitName);
    }

    #[test]
    fn volume() {
        let unit = VolumeUnit {
            unit: UnitSection {
                description: Some("Octo session ab12: home".into()),
                ..UnitSection::default()
            },
            volume: VolumeSection {
                volume_name: Some("octo-ab12".into()),
                labels: vec![
                    Label::new("octo.session", "ab12"),
                    Label::new("octo.owner", "alice"),
                ],
            },
            install: None,
        };
        check(
            unit.render(),
            r"
[Unit]
Description=Octo session ab12: home

[Volume]
VolumeName=octo-ab12
Label=octo.session=ab12
Label=octo.owner=alice
",
        );
    }

    #[test]
    fn volume_minimal_keeps_the_volume_section() {
        let unit = VolumeUnit {
            unit: UnitSection::default(),
            volume: VolumeSection::default(),
            install: None,
        };
        check(unit.render(), "\n[Volume]\n");
    }

    #[test]
    fn validation_failures() {
        let with = |edit: fn(&mut ContainerUnit)| {
            let mut unit = full_container();
            edit(&mut unit);
            unit.render()
        };
        check_error(
            with(|u| u.container.image = "localhost/x y".into()),
            "Image",
            Problem::Whitespace,
        );
        check_error(
            with(|u| u.container.container_name = Some("../x".into())),
            "ContainerName",
            Problem::BadName,
        );
        check_error(
            with(|u| u.container.publish_ports[0].host_port = 0),
            "PublishPort",
            Problem::ZeroPort,
        );
        check_error(
            with(|u| u.container.volumes[1].source = VolumeSource::HostPath("rel/dir".into())),
            "Volume",
            Problem::NotAbsolute,
        );
        check_error(
            with(|u| u.container.volumes[1].target = "/a:b".into()),
            "Volume",
            Problem::Colon,
        );
        check_error(
            with(|u| u.container.volumes[0].source = VolumeSource::Unit("octo.container".into())),
            "Volume",
            Problem::NotVolumeUnit,
        );
        check_error(
            with(|u| u.container.secrets[1].target = SecretTarget::Env("NOT-A-VAR".into())),
            "Secret",
            Problem::BadEnvName,
        );
        check_error(
            with(|u| {
                u.container.secrets[0].target = SecretTarget::File {
                    path: "run/x".into(),
                    mode: 0o400,
                    uid: 0,
                    gid: 0,
                }
            }),
            "Secret",
            Problem::NotAbsolute,
        );
        check_error(
            with(|u| u.container.network = Some(Network::Pasta(vec!["-T,all".into()]))),
            "Network",
            Problem::Comma,
        );
        check_error(
            with(|u| u.unit.requires = vec!["no suffix".into()]),
            "Requires",
            Problem::BadUnitName,
        );
        check_error(
            with(|u| u.container.secrets[0].name = "a,type=mount".into()),
            "Secret",
            Problem::BadName,
        );
        check_error(
            with(|u| u.container.labels[0].value = "two\nlines".into()),
            "Label",
            Problem::ControlCharacter,
        );
        check_error(
            with(|u| u.container.labels[0].key = "a=b".into()),
            "Label",
            Problem::BadLabelKey,
        );
        check_error(
            with(|u| u.container.health.as_mut().expect("health").cmd = "check \\".into()),
            "HealthCmd",
            Problem::TrailingBackslash,
        );
        check_error(
            with(|u| u.container.health.as_mut().expect("health").interval = Some(Duration::ZERO)),
            "HealthInterval",
            Problem::ZeroDuration,
        );
        check_error(
            with(|u| u.container.drop_capabilities = vec!["ALL NET_RAW".into()]),
            "DropCapability",
            Problem::BadCapability,
        );
        check_error(
            with(|u| u.unit.description = Some("a\rb".into())),
            "Description",
            Problem::ControlCharacter,
        );
        check_error(
            with(|u| {
                u.install = Some(InstallSection {
                    wanted_by: vec!["default".into()],
                });
            }),
            "WantedBy",
            Problem::BadUnitName,
        );
        check_error(
            with(|u| u.container.podman_args = vec![String::new()]),
            "PodmanArgs",
            Problem::Empty,
        );
    }
}
