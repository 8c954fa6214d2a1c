//! Service account tokens: JWTs signed with the cluster's service account key (ES256, ECDSA P-256),
//! with the claims Kubernetes' bound tokens carry (`iss`, `sub` = `system:serviceaccount:<ns>:<name>`,
//! `aud`, `exp`, `iat`, `nbf`, and `kubernetes.io` naming the namespace, the service account and
//! its uid, and the pod the token is bound to). Pure: signing and checking a token needs the key
//! and a clock only; whether the service account (and pod) still exist is the caller's check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// The issuer, and the audience a token gets when the request names none (kube-apiserver's
/// usual `--service-account-issuer`).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Token lifetime bounds, as the TokenRequest API applies them (seconds).
pub const DEFAULT_EXPIRATION: i64 = 3600;
pub const MIN_EXPIRATION: i64 = 600;
/// TokenRequest's validation bound (2^32 seconds); Kubernetes sets no shorter one by default.
pub const MAX_EXPIRATION: i64 = 1 << 32;
/// Clock skew accepted on `nbf` and `exp`.
const LEEWAY: i64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("service account key: {0}")]
    Key(String),
    #[error("not a JWT")]
    Malformed,
    #[error("unsupported token algorithm {0:?}")]
    Algorithm(String),
    #[error("invalid token signature")]
    Signature,
    #[error("token issued by {0:?}, not by this cluster")]
    Issuer(String),
    #[error("token audiences {0:?} do not include {ISSUER:?}")]
    Audience(Vec<String>),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token subject {0:?} is not a service account")]
    Subject(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameUid {
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: NameUid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<NameUid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    #[serde(default)]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

impl Claims {
    /// Claims for `namespace/name` (uid `uid`), valid from `now` for `seconds` (clamped to
    /// Kubernetes' bounds), optionally bound to a pod.
    pub fn new(
        namespace: &str,
        sa: NameUid,
        pod: Option<NameUid>,
        audiences: Vec<String>,
        now: i64,
        seconds: i64,
    ) -> Claims {
        let aud = if audiences.is_empty() {
            vec![ISSUER.to_string()]
        } else {
            audiences
        };
        Claims {
            iss: ISSUER.to_string(),
            sub: format!("system:serviceaccount:{namespace}:{}", sa.name),
            aud,
            exp: now + seconds.clamp(MIN_EXPIRATION, MAX_EXPIRATION),
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaims {
                namespace: namespace.to_string(),
                serviceaccount: sa,
                pod,
            },
        }
    }

    /// The user a token authenticates as, with the groups Kubernetes gives service accounts.
    pub fn user(&self) -> (String, Vec<String>) {
        let ns = &self.kubernetes.namespace;
        (
            self.sub.clone(),
            vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ],
        )
    }
}

/// The cluster's signing key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl SigningKey {
    /// A fresh key as PKCS#8 DER (stored in the store, shared by every master).
    pub fn generate_pkcs8() -> Result<Vec<u8>, TokenError> {
        let rng = SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| TokenError::Key(e.to_string()))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, TokenError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(SigningKey { pair, rng })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let body = serde_json::to_vec(claims).map_err(|e| TokenError::Key(e.to_string()))?;
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(body));
        let sig = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    /// Checks a token's signature, issuer, audience and times; returns its claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(b), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or(TokenError::Malformed)?;
        let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
        if alg != "ES256" {
            return Err(TokenError::Algorithm(alg.to_string()));
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed)?;
        let public =
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref());
        public
            .verify(format!("{h}.{b}").as_bytes(), &sig)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(b)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Issuer(claims.iss));
        }
        if !claims.aud.iter().any(|a| a == ISSUER) {
            return Err(TokenError::Audience(claims.aud));
        }
        if now > claims.exp + LEEWAY {
            return Err(TokenError::Expired);
        }
        if now + LEEWAY < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        let want = format!(
            "system:serviceaccount:{}:{}",
            claims.kubernetes.namespace, claims.kubernetes.serviceaccount.name
        );
        if claims.sub != want {
            return Err(TokenError::Subject(claims.sub));
        }
        Ok(claims)
    }
}

/// Whether a bearer token looks like a JWT (three base64url parts), so a token file lookup miss
/// is worth a signature check.
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() < 16 * 1024 && token.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("generate")).expect("load")
    }

    fn claims(now: i64) -> Claims {
        Claims::new(
            "team",
            NameUid {
                name: "ci".into(),
                uid: "u-1".into(),
            },
            None,
            Vec::new(),
            now,
            3600,
        )
    }

    #[test]
    fn a_signed_token_verifies_and_names_the_service_account() {
        let k = key();
        let t = k.sign(&claims(1000)).expect("sign");
        assert!(looks_like_jwt(&t));
        let c = k.verify(&t, 1001).expect("valid");
        assert_eq!(c.sub, "system:serviceaccount:team:ci");
        assert_eq!(c.aud, vec![ISSUER.to_string()]);
        assert_eq!(c.exp, 1000 + 3600);
        let (user, groups) = c.user();
        assert_eq!(user, "system:serviceaccount:team:ci");
        assert_eq!(groups, vec!["system:serviceaccounts", "system:serviceaccounts:team"]);
    }

    #[test]
    fn tampered_foreign_expired_and_garbage_tokens_are_refused() {
        let k = key();
        let t = k.sign(&claims(1000)).expect("sign");
        assert_eq!(k.verify(&t, 1000 + 3600 + LEEWAY + 1), Err(TokenError::Expired));
        assert_eq!(
            key().verify(&t, 1001),
            Err(TokenError::Signature),
            "another cluster's key"
        );
        // A body swapped for another subject keeps the old signature: refused.
        let mut other = claims(1000);
        other.sub = "system:serviceaccount:kube-system:admin".into();
        other.kubernetes.namespace = "kube-system".into();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).expect("json"));
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{forged_body}.{}", parts[0], parts[2]);
        assert_eq!(k.verify(&forged, 1001), Err(TokenError::Signature));
        let none_alg = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(k.verify(&none_alg, 1001), Err(TokenError::Algorithm("none".into())));
        assert_eq!(k.verify("a.b", 1), Err(TokenError::Malformed));
        assert_eq!(k.verify("!!.!!.!!", 1), Err(TokenError::Malformed));
        let mut aud = claims(1000);
        aud.aud = vec!["vault".into()];
        assert!(matches!(
            k.verify(&k.sign(&aud).expect("sign"), 1001),
            Err(TokenError::Audience(_))
        ));
    }

    #[test]
    fn lifetimes_are_clamped() {
        let short = Claims::new(
            "a",
            NameUid {
                name: "b".into(),
                uid: String::new(),
            },
            None,
            vec![],
            0,
            10,
        );
        assert_eq!(short.exp, MIN_EXPIRATION);
        let long = Claims::new(
            "a",
            NameUid {
                name: "b".into(),
                uid: String::new(),
            },
            None,
            vec![],
            0,
            i64::MAX / 2,
        );
        assert_eq!(long.exp, MAX_EXPIRATION);
    }
}
