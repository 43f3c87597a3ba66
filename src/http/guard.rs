//! What every response passes through: basic auth against `basic_auth_users` (bcrypt hashes),
//! and the response headers of `http_server_config.headers`, as exporter-toolkit applies them.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::web_config::WebConfig;

/// Accepted credentials are remembered by a digest, so that a scrape every few seconds does not
/// pay bcrypt's deliberate cost each time. Bounded: the set is emptied when it fills.
const REMEMBERED_CREDENTIALS: usize = 1024;

pub struct Guard {
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    accepted: Mutex<HashSet<[u8; 32]>>,
    /// Checked for an unknown user, at the users' own cost, so that the answer's time does
    /// not tell which user names exist.
    decoy: String,
    /// One bcrypt check at a time, as exporter-toolkit does: a flood of wrong passwords then
    /// queues here instead of filling the runtime's blocking threads, which the engine uses too.
    checking: tokio::sync::Semaphore,
}

impl Guard {
    pub fn new(config: &WebConfig) -> Guard {
        let cost = config
            .basic_auth_users
            .values()
            .filter_map(|hash| hash.parse::<bcrypt::HashParts>().ok())
            .map(|parts| parts.get_cost())
            .max();
        let decoy = cost.and_then(|cost| bcrypt::hash("not a password of anyone", cost).ok()).unwrap_or_default();
        Guard {
            users: config.basic_auth_users.clone(),
            headers: config.headers.clone(),
            accepted: Mutex::new(HashSet::new()),
            decoy,
            checking: tokio::sync::Semaphore::new(1),
        }
    }

    /// Whether the request's `Authorization` header names a user whose bcrypt hash its
    /// password matches. Always true when no users are configured.
    async fn authorized(&self, authorization: Option<&HeaderValue>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(basic_credentials) else { return false };
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if known && self.accepted.lock().is_ok_and(|accepted| accepted.contains(&digest)) {
            return true;
        }
        let Ok(_turn) = self.checking.acquire().await else { return false };
        // bcrypt is slow on purpose; keep it off the async workers.
        let checked = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false));
        let matches = checked.await.unwrap_or(false) && known;
        if matches {
            if let Ok(mut accepted) = self.accepted.lock() {
                if accepted.len() >= REMEMBERED_CREDENTIALS {
                    accepted.clear();
                }
                accepted.insert(digest);
            }
        }
        matches
    }
}

/// The user and password of a `Basic` authorization header.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The middleware: a 401 with a `Basic` challenge for missing or wrong credentials, and the
/// configured headers on every response, the 401 included.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let mut response = if guard.authorized(request.headers().get(header::AUTHORIZATION)).await {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic")], "Unauthorized\n").into_response()
    };
    for (name, value) in &guard.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[tokio::test]
    async fn only_a_user_with_the_right_password_passes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let config = WebConfig { basic_auth_users: [("alice".to_string(), hash)].into(), ..WebConfig::default() };
        let guard = Guard::new(&config);
        assert!(!guard.authorized(None).await);
        assert!(!guard.authorized(Some(&basic("alice", "wrong"))).await);
        assert!(!guard.authorized(Some(&basic("bob", "s3cret"))).await);
        assert!(!guard.authorized(Some(&HeaderValue::from_static("Bearer x"))).await);
        assert!(guard.authorized(Some(&basic("alice", "s3cret"))).await);
        // Remembered now, and still right.
        assert!(guard.authorized(Some(&basic("alice", "s3cret"))).await);
        assert!(!guard.authorized(Some(&basic("alice", "s3cret!"))).await);
        assert!(Guard::new(&WebConfig::default()).authorized(None).await);
        // An unknown user is checked against a decoy of the users' cost, and never passes.
        assert_eq!(guard.decoy.parse::<bcrypt::HashParts>().unwrap().get_cost(), 4);
        assert!(!guard.authorized(Some(&basic("mallory", "not a password of anyone"))).await);
    }
}
