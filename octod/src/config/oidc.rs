//! The `[auth]` section: local passwords on or off, and the OpenID Connect providers
//! (`[[auth.oidc]]`) users may sign in with.
//!
//! ```toml
//! [auth]
//! local_passwords = true          # false: only the providers below sign anyone in
//!
//! [[auth.oidc]]
//! id = "corp"                     # in URLs: /api/auth/oidc/corp/callback
//! name = "Corp SSO"               # the sign-in button
//! issuer = "https://id.corp.example/realms/main"
//! client_id = "octo"
//! # The client secret is the systemd credential `oidc-corp`: the file
//! # /etc/octo/credentials/oidc-corp (root only). `client_secret = "…"` is for development.
//! scopes = ["openid", "profile", "email"]
//! username_claim = "preferred_username"
//! groups_claim = "groups"
//! admin_groups = ["octo-admins"]  # members get the admin role at each sign-in
//! allowed_groups = []             # empty: anyone the provider knows
//! require_invite = false          # true: the first sign-in needs an invite code
//! ```
//!
//! The whole `auth.oidc` list is taken from the last file that sets it.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Source};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFragment {
    /// Whether users may sign in (and register) with a password. Default true.
    pub local_passwords: Option<bool>,
    pub oidc: Option<Vec<OidcFragment>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFragment {
    pub id: Option<String>,
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// Development only; a service reads the credential `oidc-<id>`.
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub username_claim: Option<String>,
    pub groups_claim: Option<String>,
    pub admin_groups: Option<Vec<String>>,
    pub allowed_groups: Option<Vec<String>>,
    pub require_invite: Option<bool>,
}

/// One provider, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcProvider {
    /// `[a-z0-9-]{1,32}`, starting with a letter.
    pub id: String,
    pub name: String,
    /// An `https` URL, or `http` on a loopback host (development).
    pub issuer: String,
    pub client_id: String,
    /// From the configuration (development); otherwise the credential `oidc-<id>` at start.
    pub client_secret: Option<String>,
    /// Always includes `openid`.
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub groups_claim: Option<String>,
    pub admin_groups: Vec<String>,
    pub allowed_groups: Vec<String>,
    pub require_invite: bool,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("scopes", &self.scopes)
            .field("username_claim", &self.username_claim)
            .field("groups_claim", &self.groups_claim)
            .field("admin_groups", &self.admin_groups)
            .field("allowed_groups", &self.allowed_groups)
            .field("require_invite", &self.require_invite)
            .finish()
    }
}

/// The `[auth]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub local_passwords: bool,
    pub oidc: Vec<OidcProvider>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            local_passwords: true,
            oidc: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// The providers as a TOML array of inline tables, the secret masked (`config show`).
    pub fn oidc_toml(&self) -> String {
        let text = |s: &str| toml::Value::String(s.to_owned());
        let list = |l: &[String]| toml::Value::Array(l.iter().map(|s| text(s)).collect());
        let providers = self.oidc.iter().map(|p| {
            let mut table = toml::map::Map::new();
            table.insert("id".into(), text(&p.id));
            table.insert("name".into(), text(&p.name));
            table.insert("issuer".into(), text(&p.issuer));
            table.insert("client_id".into(), text(&p.client_id));
            if p.client_secret.is_some() {
                table.insert("client_secret".into(), text("***"));
            }
            table.insert("scopes".into(), list(&p.scopes));
            table.insert("username_claim".into(), text(&p.username_claim));
            if let Some(claim) = &p.groups_claim {
                table.insert("groups_claim".into(), text(claim));
            }
            table.insert("admin_groups".into(), list(&p.admin_groups));
            table.insert("allowed_groups".into(), list(&p.allowed_groups));
            table.insert(
                "require_invite".into(),
                toml::Value::Boolean(p.require_invite),
            );
            toml::Value::Table(table)
        });
        toml::Value::Array(providers.collect()).to_string()
    }
}

/// At most this many providers.
pub const MAX_PROVIDERS: usize = 16;

pub(super) fn auth_config(
    fragments: &[(PathBuf, super::Fragment)],
    sources: &mut Vec<(&'static str, Source)>,
) -> Result<AuthConfig, ConfigError> {
    let mut config = AuthConfig::default();
    if let Some((value, path)) = fragments
        .iter()
        .rev()
        .find_map(|(path, f)| f.auth.local_passwords.map(|v| (v, path)))
    {
        sources.push(("auth.local_passwords", Source::File(path.clone())));
        config.local_passwords = value;
    }
    let Some((list, path)) = fragments
        .iter()
        .rev()
        .find_map(|(path, f)| f.auth.oidc.as_ref().map(|v| (v, path)))
    else {
        if !config.local_passwords {
            let at = fragments
                .iter()
                .rev()
                .find(|(_, f)| f.auth.local_passwords.is_some())
                .map_or_else(String::new, |(p, _)| p.display().to_string());
            return Err(ConfigError::Invalid {
                path: at,
                key: "auth.local_passwords",
                message: "false needs at least one [[auth.oidc]] provider, or nobody could sign in"
                    .into(),
            });
        }
        return Ok(config);
    };
    sources.push(("auth.oidc", Source::File(path.clone())));
    let at = path.display().to_string();
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: at.clone(),
        key,
        message,
    };
    if list.len() > MAX_PROVIDERS {
        return Err(invalid(
            "auth.oidc",
            format!("at most {MAX_PROVIDERS} providers"),
        ));
    }
    for (n, fragment) in list.iter().enumerate() {
        let provider = provider(fragment).map_err(|(key, message)| {
            invalid(key, format!("provider {} of the list: {message}", n + 1))
        })?;
        if config.oidc.iter().any(|p| p.id == provider.id) {
            return Err(invalid(
                "auth.oidc.id",
                format!("{:?} is used twice", provider.id),
            ));
        }
        config.oidc.push(provider);
    }
    if !config.local_passwords && config.oidc.is_empty() {
        return Err(invalid(
            "auth.local_passwords",
            "false needs at least one [[auth.oidc]] provider, or nobody could sign in".into(),
        ));
    }
    Ok(config)
}

fn provider(f: &OidcFragment) -> Result<OidcProvider, (&'static str, String)> {
    let required = |key: &'static str, value: &Option<String>| {
        value
            .clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or((key, "is required".to_owned()))
    };
    let id = required("auth.oidc.id", &f.id)?;
    if !valid_id(&id) {
        return Err((
            "auth.oidc.id",
            format!("{id:?}: use 1–32 lower-case letters, digits and '-', starting with a letter"),
        ));
    }
    let issuer = required("auth.oidc.issuer", &f.issuer)?;
    check_issuer(&issuer).map_err(|m| ("auth.oidc.issuer", format!("{issuer:?}: {m}")))?;
    let client_id = required("auth.oidc.client_id", &f.client_id)?;
    let mut scopes = f
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    if let Some(bad) = scopes.iter().find(|s| {
        s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    }) {
        return Err(("auth.oidc.scopes", format!("{bad:?} is not a scope")));
    }
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    let claim = |key: &'static str, value: Option<&String>| match value {
        Some(v) if v.is_empty() || v.len() > 128 => Err((key, "must be 1–128 characters".into())),
        other => Ok(other.cloned()),
    };
    let username_claim = claim("auth.oidc.username_claim", f.username_claim.as_ref())?
        .unwrap_or_else(|| "preferred_username".into());
    let groups_claim = claim("auth.oidc.groups_claim", f.groups_claim.as_ref())?;
    let admin_groups = f.admin_groups.clone().unwrap_or_default();
    let allowed_groups = f.allowed_groups.clone().unwrap_or_default();
    if groups_claim.is_none() && !(admin_groups.is_empty() && allowed_groups.is_empty()) {
        return Err((
            "auth.oidc.groups_claim",
            "is needed with admin_groups or allowed_groups".into(),
        ));
    }
    Ok(OidcProvider {
        name: f
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| id.clone()),
        id,
        issuer,
        client_id,
        client_secret: f.client_secret.clone(),
        scopes,
        username_claim,
        groups_claim,
        admin_groups,
        allowed_groups,
        require_invite: f.require_invite.unwrap_or(false),
    })
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `https://host[:port][/path]`, or `http://` to a loopback host (a provider on the same
/// machine, for development and tests); no query or fragment.
fn check_issuer(issuer: &str) -> Result<(), String> {
    let (scheme, rest) = issuer
        .split_once("://")
        .ok_or_else(|| "not a URL".to_owned())?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(authority, |(host, _)| host);
    if host.is_empty() || rest.contains(['?', '#']) || issuer.chars().any(char::is_whitespace) {
        return Err("not an issuer URL (https://host/path, no query)".into());
    }
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "localhost" | "127.0.0.1" | "[::1]") => Ok(()),
        "http" => Err("must be https (http only for a provider on localhost)".into()),
        _ => Err("must be an https URL".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Fragment, merge};

    fn parse(text: &str) -> Result<AuthConfig, ConfigError> {
        let fragment: Fragment = toml::from_str(text).expect("toml");
        merge(&[(PathBuf::from("/etc/octo/octod.toml"), fragment)]).map(|s| s.auth)
    }

    const CORP: &str = r#"
        [[auth.oidc]]
        id = "corp"
        issuer = "https://id.example/realms/main"
        client_id = "octo"
    "#;

    #[test]
    fn defaults() {
        let auth = parse("").unwrap();
        assert!(auth.local_passwords);
        assert!(auth.oidc.is_empty());
        let auth = parse(CORP).unwrap();
        let corp = &auth.oidc[0];
        assert_eq!(corp.name, "corp");
        assert_eq!(corp.scopes, ["openid", "profile", "email"]);
        assert_eq!(corp.username_claim, "preferred_username");
        assert_eq!(corp.groups_claim, None);
        assert!(!corp.require_invite);
        assert_eq!(corp.client_secret, None);
    }

    #[test]
    fn openid_is_always_asked_for() {
        let auth = parse(&format!("{CORP}\nscopes = [\"email\"]")).unwrap();
        assert_eq!(auth.oidc[0].scopes, ["openid", "email"]);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "[[auth.oidc]]\nissuer = \"https://a\"\nclient_id = \"x\"",
                "auth.oidc.id: provider 1 of the list: is required",
            ),
            (
                "[[auth.oidc]]\nid = \"Corp\"\nissuer = \"https://a\"\nclient_id = \"x\"",
                "auth.oidc.id",
            ),
            (
                "[[auth.oidc]]\nid = \"c\"\nissuer = \"http://id.example\"\nclient_id = \"x\"",
                "auth.oidc.issuer: provider 1 of the list: \"http://id.example\": must be https",
            ),
            (
                "[[auth.oidc]]\nid = \"c\"\nissuer = \"https://a\"",
                "auth.oidc.client_id",
            ),
            (
                "[[auth.oidc]]\nid = \"c\"\nissuer = \"https://a\"\nclient_id = \"x\"\nadmin_groups = [\"a\"]",
                "auth.oidc.groups_claim: provider 1 of the list: is needed",
            ),
            ("[auth]\nlocal_passwords = false", "auth.local_passwords"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let twice = format!("{CORP}{CORP}");
        assert!(
            parse(&twice)
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
    }

    #[test]
    fn loopback_http_is_for_development() {
        for ok in [
            "http://localhost:9000",
            "http://127.0.0.1/x",
            "https://id.example:8443/a/b",
        ] {
            assert_eq!(check_issuer(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://a",
            "https://",
            "https://a?x=1",
            "id.example",
            "http://10.0.0.1",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_secret_is_not_in_debug() {
        let auth = parse(&format!("{CORP}\nclient_secret = \"hunter22\"")).unwrap();
        assert!(!format!("{auth:?}").contains("hunter22"));
    }
}
