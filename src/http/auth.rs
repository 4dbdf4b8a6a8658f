//! Tokens, roles and workspaces: who may do what, in which workspaces.
//!
//! A token is `dp_` + 64 hex digits of OS randomness. Only its SHA-256 is
//! stored (the secret has 256 bits of entropy, so a fast hash is enough),
//! plus a short prefix in clear to tell tokens apart in listings. The table of
//! live tokens is held in memory and changed by the same calls that change
//! SQLite, so a revoked token fails on its very next request.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{bail, Context, Result};
use docpipe_actors::{valid_workspace, DEFAULT_WORKSPACE};
use docpipe_actors::{Origin, Pipeline, Scope, TokenRow};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read and search.
    Reader,
    /// Also upload, edit, delete, retry.
    Editor,
    /// Everything, in every workspace: tokens, audit trail, pipeline figures.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The caller of a request, once its token checked out.
#[derive(Clone, Debug)]
pub struct Principal {
    pub token_id: String,
    pub role: Role,
    /// The workspaces the token may act in; admins act in all of them.
    pub workspaces: Arc<[String]>,
}

impl Principal {
    pub fn scope(&self) -> Scope {
        if self.role == Role::Admin {
            Scope::All
        } else {
            Scope::Only(self.workspaces.clone())
        }
    }

    pub fn may_use(&self, workspace: &str) -> bool {
        self.scope().allows(workspace)
    }

    /// Where an upload goes when it names no workspace: `default` if the token
    /// may use it, else the token's first workspace.
    pub fn default_workspace(&self) -> &str {
        if self.may_use(DEFAULT_WORKSPACE) {
            DEFAULT_WORKSPACE
        } else {
            self.workspaces
                .first()
                .map(String::as_str)
                .unwrap_or(DEFAULT_WORKSPACE)
        }
    }

    pub fn origin(&self, request_id: &str) -> Origin {
        Origin {
            token_id: Some(self.token_id.clone()),
            request_id: Some(request_id.to_string()),
        }
    }
}

/// The id of the token set by `auth.admin_token` / `DOCPIPE_ADMIN_TOKEN`.
pub const CONFIGURED_ADMIN_ID: &str = "configured-admin";

#[derive(Clone)]
pub struct Auth {
    pipeline: Pipeline,
    /// SHA-256 (hex) of each live secret → its holder.
    live: Arc<RwLock<HashMap<String, Principal>>>,
}

/// A token just made: the only time its secret exists outside the client.
#[derive(Debug, Serialize)]
pub struct NewToken {
    #[serde(flatten)]
    pub row: TokenRow,
    pub token: String,
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    format!(
        "dp_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Auth {
    /// Loads the live tokens. With no token configured and none ever created,
    /// makes the first admin token, writes it to `data_dir/admin-token` (mode
    /// 0600) and returns it so that it can be shown once.
    pub async fn start(
        pipeline: Pipeline,
        configured_admin: Option<&str>,
        data_dir: &Path,
    ) -> Result<(Auth, Option<String>)> {
        let auth = Auth {
            pipeline: pipeline.clone(),
            live: Arc::new(RwLock::new(HashMap::new())),
        };
        let rows = pipeline.reader().tokens().await?;
        {
            let mut live = auth.live.write().expect("token table poisoned");
            for row in rows.iter().filter(|r| r.revoked_at.is_none()) {
                if let Some(p) = principal_of(row) {
                    live.insert(row.hash.clone(), p);
                }
            }
            if let Some(secret) = configured_admin {
                live.insert(
                    hash_secret(secret),
                    Principal {
                        token_id: CONFIGURED_ADMIN_ID.into(),
                        role: Role::Admin,
                        workspaces: Arc::from([]),
                    },
                );
            }
        }
        let mut shown = None;
        if configured_admin.is_none() && rows.is_empty() {
            let origin = Origin {
                token_id: Some("system".into()),
                request_id: None,
            };
            let made = auth
                .create("admin", Role::Admin, Vec::new(), &origin)
                .await?;
            write_secret_file(&data_dir.join("admin-token"), &made.token)?;
            shown = Some(made.token);
        }
        Ok((auth, shown))
    }

    /// The holder of this secret, if it is a live token.
    pub fn authenticate(&self, secret: &str) -> Option<Principal> {
        let hash = hash_secret(secret);
        self.live
            .read()
            .expect("token table poisoned")
            .get(&hash)
            .cloned()
    }

    /// The holder of a live token, by its id (a browser's ticket names it).
    pub fn by_token_id(&self, token_id: &str) -> Option<Principal> {
        self.live
            .read()
            .expect("token table poisoned")
            .values()
            .find(|p| p.token_id == token_id)
            .cloned()
    }

    pub async fn create(
        &self,
        name: &str,
        role: Role,
        workspaces: Vec<String>,
        origin: &Origin,
    ) -> Result<NewToken> {
        let secret = new_secret();
        let row = TokenRow {
            id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
            name: name.to_string(),
            role: role.as_str().to_string(),
            workspaces,
            prefix: secret[..11].to_string(),
            hash: hash_secret(&secret),
            created_at: docpipe_actors::format_ms(docpipe_actors::now_ms()),
            revoked_at: None,
        };
        self.pipeline.create_token(row.clone(), origin).await?;
        if let Some(p) = principal_of(&row) {
            self.live
                .write()
                .expect("token table poisoned")
                .insert(row.hash.clone(), p);
        }
        Ok(NewToken { row, token: secret })
    }

    /// Revokes a token: it fails from its next request on.
    pub async fn revoke(&self, id: &str, origin: &Origin) -> Result<bool> {
        let revoked = self.pipeline.revoke_token(id, origin).await?;
        if revoked {
            self.live
                .write()
                .expect("token table poisoned")
                .retain(|_, p| p.token_id != id);
        }
        Ok(revoked)
    }
}

fn principal_of(row: &TokenRow) -> Option<Principal> {
    Some(Principal {
        token_id: row.id.clone(),
        role: Role::parse(&row.role)?,
        workspaces: row.workspaces.clone().into(),
    })
}

/// Checks a token request's fields; the message names the problem.
pub fn check_new_token(name: &str, role: Role, workspaces: &[String]) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        bail!("name must be 1 to 100 characters, without control characters");
    }
    if let Some(bad) = workspaces.iter().find(|w| !valid_workspace(w)) {
        bail!("workspace {bad:?} is not a valid name (a-z, 0-9, '-' and '_', at most 64)");
    }
    if role != Role::Admin && workspaces.is_empty() {
        bail!("a reader or editor token needs at least one workspace");
    }
    Ok(())
}

fn write_secret_file(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(format!("{secret}\n").as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_scopes_follow_workspaces() {
        assert!(Role::Admin > Role::Editor && Role::Editor > Role::Reader);
        let p = Principal {
            token_id: "t".into(),
            role: Role::Editor,
            workspaces: Arc::from(["acme".to_string()]),
        };
        assert!(p.may_use("acme") && !p.may_use("default"));
        assert_eq!(p.default_workspace(), "acme");
        let admin = Principal {
            role: Role::Admin,
            ..p
        };
        assert_eq!(admin.scope(), Scope::All);
        assert_eq!(admin.default_workspace(), "default");
    }

    #[test]
    fn secrets_are_long_random_and_hashed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(hash_secret(&a).len(), 64);
        assert!(check_new_token("ci", Role::Reader, &[]).is_err());
        assert!(check_new_token("ci", Role::Reader, &["Bad Name".into()]).is_err());
        assert!(check_new_token("ci", Role::Reader, &["acme".into()]).is_ok());
    }
}
