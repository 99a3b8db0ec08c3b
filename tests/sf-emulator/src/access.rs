//! What the org has and what the integration user may see: absent optional objects
//! (EmailMessage needs Email-to-Case or Enhanced Email, Knowledge must be enabled), objects
//! the user cannot read, and the "View Setup and Configuration" permission `/limits` needs.
//!
//! Salesforce answers an absent object and an unreadable one alike: missing from describe
//! global, 404 `NOT_FOUND` under `/sobjects/{name}/`, `INVALID_TYPE` in SOQL and Bulk.

use axum::response::Response;

use crate::Settings;
use crate::soql::{Catalog, ObjectSchema};

/// Whether `object` is absent from the org or unreadable for the user (case-insensitive).
pub fn hidden(settings: &Settings, object: &str) -> bool {
    settings
        .absent_objects
        .iter()
        .chain(&settings.unreadable_objects)
        .any(|o| o.eq_ignore_ascii_case(object))
}

/// The 403 `/limits` answers a user without "View Setup and Configuration".
pub fn limits_refused() -> Response {
    crate::rest::api_error(
        403,
        "INSUFFICIENT_ACCESS",
        "You do not have sufficient privileges to access the requested resource: View Setup and Configuration is required",
    )
}

/// The schema catalog as the user sees it: hidden objects do not exist.
pub struct VisibleCatalog<'a> {
    /// The full catalog.
    pub inner: &'a dyn Catalog,
    /// The settings naming the hidden objects.
    pub settings: &'a Settings,
}

impl Catalog for VisibleCatalog<'_> {
    fn object(&self, name: &str) -> Option<&ObjectSchema> {
        if hidden(self.settings, name) {
            return None;
        }
        self.inner.object(name)
    }
}
