//! [`Config`]: what a [`JwtAuth`](super::JwtAuth) service needs, built by the layer's builder.

use std::{fmt, sync::Arc, time::Duration};

use super::{RevocationCheck, reject::Rejector, validate::Verifier};

/// Everything a [`JwtAuth`](super::JwtAuth) service needs, shared by all its clones.
pub(crate) struct Config {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) rejector: Rejector,
    pub(crate) revocation: Option<Arc<dyn RevocationCheck>>,
    pub(crate) revocation_timeout: Duration,
    pub(crate) allow_missing_token: bool,
    /// DPoP, when some issuer's policy is not off.
    pub(crate) dpop: Option<super::dpop::Dpop>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("verifier", &self.verifier)
            .field("rejector", &self.rejector)
            .field("revocation", &self.revocation.is_some())
            .field("revocation_timeout", &self.revocation_timeout)
            .field("allow_missing_token", &self.allow_missing_token)
            .field("dpop", &self.dpop)
            .finish()
    }
}
